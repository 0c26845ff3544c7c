// Package connlimit bounds how many connections one client address may
// hold open on a listener at once: a client opening thousands of TLS
// connections and feeding each a slow body otherwise holds a goroutine,
// a file descriptor and ~35 KB of memory per connection until the
// server's read timeout (60 s) closes it (docs/benchmarks.md, Session 14
// attack6: 3,000 such connections, RSS 71 → 178 MB).
//
// A connection past the limit is closed as soon as it is accepted, before
// its TLS handshake, so it costs the server one accept and one close.
// IPv6 clients are counted per /64 (what one host can rotate through),
// IPv4 per address (credential.AddressKey, the key of the sign-in limits).
// Addresses of trusted proxies are not limited: every client behind a
// proxy arrives from its address.
package connlimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/credential"
)

// DefaultMax is the default limit per client address. Apple devices keep
// no connection open while idle and one or two while they talk to the
// server (HTTP/1.1 keep-alive, closed after the idle timeout), so 256
// leaves room for a few hundred devices behind one carrier NAT address
// talking at the same moment, and bounds an attacker's address to about
// 9 MB (256 × ~35 KB).
const DefaultMax = 256

// logEvery bounds the log lines about one refused address: the first
// refusal is logged at once, later ones summed into one line at most this
// often while the address stays over its limit.
const logEvery = time.Minute

// Listener is a net.Listener whose Accept hands out at most Max open
// connections per client address (see the package comment); the others
// are closed at once, counted by Refused and logged.
type Listener struct {
	net.Listener
	max    int
	exempt []netip.Prefix
	// refused is called once per connection closed for its address's limit
	// (a metric's Inc); nil: not counted.
	refused func()
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	open map[string]*entry // by address key; removed at 0 open connections
}

type entry struct {
	n       int       // connections open
	refused int       // refused since the last log line
	logged  time.Time // last log line about this address
}

// New wraps ln so that each client address holds at most max open
// connections (max ≤ 0: no limit, ln is returned as it is). Connections
// from addresses in exempt (trusted proxies) are never limited. refused
// (may be nil) is called for every connection refused; log receives one
// warning when an address is first refused, then at most one a minute
// with the number refused meanwhile.
func New(ln net.Listener, max int, exempt []netip.Prefix, refused func(), log *slog.Logger) net.Listener {
	if max <= 0 {
		return ln
	}
	return &Listener{Listener: ln, max: max, exempt: exempt, refused: refused, log: log, now: time.Now,
		open: map[string]*entry{}}
}

// Accept returns the next connection whose address is under its limit.
// Connections over the limit are closed here and never returned; errors
// are the wrapped listener's.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, limited := l.key(c.RemoteAddr())
		if !limited {
			return c, nil
		}
		if l.take(key) {
			return &conn{Conn: c, l: l, key: key}, nil
		}
		c.Close()
	}
}

// key is the address key of a peer, and whether the peer is limited at
// all (not a trusted proxy; a peer without an IP address, such as a Unix
// socket's, is limited under its text).
func (l *Listener) key(a net.Addr) (string, bool) {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return a.String(), true
	}
	ip = ip.Unmap()
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return "", false
		}
	}
	return credential.AddressKey(ip.String()), true
}

// take counts a new connection of key, or refuses it (false) when key
// already holds max.
func (l *Listener) take(key string) bool {
	l.mu.Lock()
	e := l.open[key]
	if e == nil {
		e = &entry{}
		l.open[key] = e
	}
	if e.n < l.max {
		e.n++
		l.mu.Unlock()
		return true
	}
	e.refused++
	var n int
	if now := l.now(); now.Sub(e.logged) >= logEvery {
		n, e.refused, e.logged = e.refused, 0, now
	}
	l.mu.Unlock()
	if l.refused != nil {
		l.refused()
	}
	if n > 0 && l.log != nil {
		l.log.Warn("connections refused: this client address holds the most open connections allowed (--max-conns-per-address)",
			"address", key, "open", l.max, "refused", n)
	}
	return false
}

func (l *Listener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.open[key]
	if e == nil {
		return
	}
	if e.n--; e.n <= 0 {
		delete(l.open, key)
	}
}

// Open returns how many connections key (an address key) holds open.
func (l *Listener) Open(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.open[key]; e != nil {
		return e.n
	}
	return 0
}

// conn gives its address's place back when it is first closed.
type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
