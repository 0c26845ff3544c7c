package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// webhooksChannel is the NOTIFY channel of every committed write of the
// webhooks table (migration 0031's statement trigger).
const webhooksChannel = "pomona_webhooks"

// authChannel is the NOTIFY channel of every committed write that can
// change a command-channel request's sender read (migration 0032's
// statement triggers; sqlstore's authCache). The same connection listens
// on both: one probe proves that notices reach it.
const authChannel = "pomona_auth"

// queueChannel is the NOTIFY channel of every committed write that may
// give a channel a command an Idle poll would be handed (migration 0033's
// triggers; payload: the channel's id, or "" for several): sqlstore's
// authCache forgets that it saw that queue empty (QueueChanged).
const queueChannel = "pomona_queue"

// Timings of the webhook change listener.
const (
	// listenPing: after this long without a notice the listener checks
	// that notices still reach it (probe: a half-open connection, the
	// database host gone without a reset, would otherwise keep a stale
	// list in use until TCP keepalive gives up). A third of
	// sqlstore.ListenerFreshFor: a live listener is heard from (a notice
	// or the probe's answer, ListenerHeard) well within it, so the store
	// keeps using what it remembers; a dead one is not, and the store
	// stops within ListenerFreshFor, not listenPing + listenTimeout
	// later (40 s when this was 30 s). One pg_notify a second per quiet
	// instance.
	listenPing = sqlstore.ListenerFreshFor / 3
	// listenTimeout bounds connecting, LISTEN and each probe.
	listenTimeout = 10 * time.Second
	// listenRetryMin, listenRetryMax: the wait before connecting again
	// after a failure, doubling from the one to the other.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 30 * time.Second
)

// webhookListener keeps one dedicated connection (not one of the pool's)
// listening on webhooksChannel and tells the store (sqlstore's
// SetWebhooksWatched, WebhooksChanged): while it listens, QueueEvent
// answers an event nobody subscribes to from the remembered webhook list,
// with no statement; each notice forgets the list; losing the connection
// (or any error of it) forgets it and turns the remembering off until a
// new connection listens again. PostgreSQL delivers a notice to every
// listening session when the writing transaction commits, so a webhook
// created through any instance takes this instance's events from the
// moment the notice arrives. The same connection listens on authChannel
// and tells the store the same way (SetAuthWatched, AuthChanged): while
// it listens, a command-channel request's sender is answered from what
// the store remembers (sqlstore's authCache), forgotten on each notice,
// and (queueChannel) an Idle poll of a channel whose queue it saw empty
// is answered without reading the queue until a notice names the
// channel.
type webhookListener struct {
	cfg    *pgx.ConnConfig
	s      *sqlstore.Store
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// listening counts the connections that began listening (for tests:
	// a reconnect is seen as a higher count); pid is the backend process
	// of the current one (0 before the first).
	listening atomic.Int64
	pid       atomic.Uint32
	// notices counts the notices of writes received (not probes).
	notices atomic.Int64
	// authNotices counts the notices on authChannel.
	authNotices atomic.Int64
	// queueNotices counts the notices on queueChannel.
	queueNotices atomic.Int64
	// probes numbers this listener's probes.
	probes atomic.Uint64
}

// startWebhookListener starts listening for s in the background, on its
// own connection to connURL (the pool's URL, pool_max_conns taken out).
// Until the first connection listens, every event reads the list as it
// did without a listener.
func startWebhookListener(connURL string, s *sqlstore.Store) (*webhookListener, error) {
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: webhook listener: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &webhookListener{cfg: cfg, s: s, cancel: cancel, done: make(chan struct{})}
	go l.run(ctx)
	return l, nil
}

// stop ends the listener and waits for it; the store then reads the list
// for every event. Safe to call more than once.
func (l *webhookListener) stop() error {
	l.once.Do(func() {
		l.cancel()
		<-l.done
	})
	return nil
}

// run listens, connecting again after each failure, until ctx ends.
func (l *webhookListener) run(ctx context.Context) {
	defer close(l.done)
	wait := listenRetryMin
	for {
		began := time.Now()
		err := l.session(ctx)
		l.s.SetWebhooksWatched(false)
		l.s.SetAuthWatched(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > listenRetryMax {
			wait = listenRetryMin // it had been working: try again soon
		}
		slog.Warn("store: the webhook change listener lost its connection; every event reads the webhook list until it listens again",
			"err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, listenRetryMax)
	}
}

// session is one connection's life: connect, LISTEN, prove that notices
// arrive (probe), then forget the list on each notice until an error (or
// ctx's end), which it returns.
func (l *webhookListener) session(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, listenTimeout)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	if err != nil {
		cancel()
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	// LISTEN takes effect when it commits (autocommit: before Exec
	// returns); from then on every committed write of webhooks sends this
	// connection a notice, so the list may be remembered only now.
	_, err = conn.Exec(cctx, "LISTEN "+webhooksChannel)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+authChannel)
	}
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+queueChannel)
	}
	cancel()
	if err != nil {
		return err
	}
	l.pid.Store(conn.PgConn().PID())
	if err := l.probe(ctx, conn); err != nil {
		return err
	}
	l.s.SetWebhooksWatched(true)
	l.s.SetAuthWatched(true)
	l.listening.Add(1)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			l.s.ListenerHeard(time.Now())
			l.notice(n)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet for listenPing: a read timeout leaves the connection
			// usable; check that notices still arrive on it.
			if err := l.probe(ctx, conn); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// probePrefix begins the payload of a listener's own test notice; the
// trigger's notices have an empty payload.
const probePrefix = "probe "

// notice handles one notice: a write of webhooks forgets the list, a
// write of a sender's rows (authChannel) the remembered senders; a probe
// (this listener's or another instance's) changes nothing.
func (l *webhookListener) notice(n *pgconn.Notification) {
	if n.Channel == queueChannel {
		// Before the probe's test: the payload is a channel id, whatever
		// it begins with (probes go to webhooksChannel).
		l.queueNotices.Add(1)
		l.s.QueueChanged(n.Payload)
		return
	}
	if strings.HasPrefix(n.Payload, probePrefix) {
		return
	}
	if n.Channel == authChannel {
		l.authNotices.Add(1)
		l.s.AuthChanged()
		return
	}
	l.notices.Add(1)
	l.s.WebhooksChanged()
}

// probe sends a notice on webhooksChannel from conn and waits (up to
// listenTimeout) until conn receives it: the notices reach this
// connection, end to end. LISTEN alone does not prove it: behind a pooler
// in transaction mode (PgBouncer's pool_mode=transaction) LISTEN succeeds
// on whichever server connection ran it and the notices never reach the
// client — the list would be remembered and never forgotten. Without the
// probe's notice the session fails and the list is not remembered (every
// event reads it, as without a listener). Notices that arrive meanwhile
// are handled as usual.
func (l *webhookListener) probe(ctx context.Context, conn *pgx.Conn) error {
	token := probePrefix + strconv.FormatUint(l.probes.Add(1), 10) + " " + strconv.FormatUint(uint64(conn.PgConn().PID()), 10)
	pctx, cancel := context.WithTimeout(ctx, listenTimeout)
	defer cancel()
	if _, err := conn.Exec(pctx, "SELECT pg_notify($1, $2)", webhooksChannel, token); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(pctx)
		if n != nil {
			if n.Payload == token && n.PID == conn.PgConn().PID() {
				l.s.ListenerHeard(time.Now())
				return nil
			}
			l.notice(n)
		}
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("postgres: webhook listener: its own notice did not arrive within %v (a pooler in transaction mode?)", listenTimeout)
			}
			return err
		}
	}
}
