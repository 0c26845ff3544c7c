package postgres

import (
	"context"
	"database/sql"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// freezingProxy forwards TCP connections to target until frozen: then it
// stops forwarding either way and keeps the sockets open — a connection
// dead without a word (a failover moving the database's address, a
// firewall dropping an idle connection's state).
type freezingProxy struct {
	ln     net.Listener
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *freezingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // hold what was read: nothing goes through
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// TestListenerSilentConnectionStopsTheCache (break8): the change
// listener's connection goes silent without being closed (frozen here
// by a proxy) after the store saw a device's queue empty; a command is
// then enqueued by another writer. Its notice never arrives, and the
// listener found out only when its probe — sent after 30 s of quiet —
// timed out 10 s later: for up to 40 s every Idle poll of the device was
// told no command waits (and a sender revoked meanwhile was accepted,
// and an event found no subscriber in the remembered webhook list).
// The store now uses what it remembers only within ListenerFreshFor (3
// s) of hearing from the listener, which probes after 1 s of quiet: the
// poll after that reads the queue and gets the command. On the code
// before, the poll 3.5 s after the freeze was told none waits.
func TestListenerSilentConnectionStopsTheCache(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	migrated, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlstore.New(Dialect, db, db, "fresh")
	// The listener alone goes through the proxy.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p := newFreezingProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	proxied := strings.Replace(url, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), p.ln.Addr().String(), 1)
	l, err := startWebhookListener(proxied, s)
	if err != nil {
		t.Fatal(err)
	}
	s.OnClose(l.stop)
	t.Cleanup(func() { s.Close() })
	waitFor(t, "the listener", func() bool { return l.listening.Load() > 0 })
	q := enrolledDevice(t, s)
	time.Sleep(100 * time.Millisecond) // the setup's notices
	for range 2 {
		if r, err := s.DeviceRequest(ctx, q); err != nil || r.CommandWaiting {
			t.Fatal(err, r)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err) // remembered: nobody subscribes
	}
	p.frozen.Store(true)
	t.Cleanup(func() { p.frozen.Store(false) })
	if _, err := db.ExecContext(ctx, `INSERT INTO webhooks (id, url, secret, events, created_at) VALUES ('w1', 'https://a.example/hook', '\x00', '', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by) VALUES ('cmd-f', 'DeviceInformation', '\x00', 1, 0, 'operator')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at) VALUES ('ch-ac', 'cmd-f', 1, 'queued', 1)`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(sqlstore.ListenerFreshFor + 500*time.Millisecond)
	r, err := s.DeviceRequest(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEvent(ctx, "command.result", hookPayload, now); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(t, s, "w1"); n != 1 {
		t.Errorf("a webhook written while the listener's connection was silent: %d deliveries of the next event, want 1", n)
	}
	if !r.CommandWaiting {
		t.Fatalf("an Idle poll %v after the listener's connection went silent was told no command waits (a command was enqueued meanwhile)",
			sqlstore.ListenerFreshFor+500*time.Millisecond)
	}
}
