// Package apnsstub is a local stand-in for Apple's push service: an HTTP/2
// TLS server that accepts MDM pushes the way APNs does (client certificate
// required, POST /3/device/<hex token>, apns-push-type mdm, apns-topic,
// {"mdm": "<PushMagic>"}) and hands them to whoever listens: tests, the
// device simulator, demo setups. It never talks to Apple.
package apnsstub

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/pki"
)

// Push is one received push.
type Push struct {
	Token     []byte
	Topic     string
	PushMagic string
	Client    *x509.Certificate
	At        time.Time
}

// Server is a running stand-in.
type Server struct {
	URL string
	CA  *pki.CA // issued the server's TLS certificate: trust it in the client
	srv *httptest.Server

	mu     sync.Mutex
	pushes []Push // the latest maxKept
	total  int
	dead   map[string]string // hex token -> reason
	fail   map[string]int    // hex token -> 5xx answers still to give
	limit  map[string]int    // hex token -> 429 answers still to give
	hang   map[string]bool   // hex token -> never answered
	notify map[string]chan Push
	delay  time.Duration // before answering an accepted push

	inFlight, maxInFlight int

	closing   chan struct{} // closed by Close: hung requests end
	closeOnce sync.Once
}

// maxKept bounds the pushes Pushes returns (a long simulation receives many).
const maxKept = 10000

// Options choose where a stand-in listens and which CA it uses.
type Options struct {
	// Addr is a loopback host:port; empty: any free port.
	Addr string
	// CA issues the TLS certificate (keep it to let a server trust the
	// stand-in across restarts); nil: a new one.
	CA *pki.CA
}

// Start runs a stand-in on a free loopback port with a new CA.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith runs a stand-in as o says. It only listens on loopback.
func StartWith(o Options) (*Server, error) {
	ca := o.CA
	if ca == nil {
		var err error
		if ca, err = pki.NewCA("APNs stand-in CA", pki.ECDSAP256, time.Now()); err != nil {
			return nil, err
		}
	}
	cert, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, pki.ECDSAP256, time.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{CA: ca, dead: map[string]string{}, fail: map[string]int{}, limit: map[string]int{}, hang: map[string]bool{},
		notify: map[string]chan Push{}, closing: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	if o.Addr != "" {
		host, _, err := net.SplitHostPort(o.Addr)
		if err != nil || (host != "127.0.0.1" && host != "localhost" && host != "::1") {
			return nil, fmt.Errorf("apnsstub: %q is not a loopback address (host:port)", o.Addr)
		}
		ln, err := net.Listen("tcp", o.Addr)
		if err != nil {
			return nil, fmt.Errorf("apnsstub: %w", err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = ln
	}
	s.srv.EnableHTTP2 = true
	s.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		// Like APNs: a client certificate is required (its topic is checked below).
		ClientAuth: tls.RequireAnyClientCert,
	}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the stand-in (hung requests end first).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// Dead makes pushes to token answer 410 (or 400 with reason).
func (s *Server) Dead(token []byte, reason string) {
	s.mu.Lock()
	s.dead[hex.EncodeToString(token)] = reason
	s.mu.Unlock()
}

// FailNext makes the next n pushes to token answer 503.
func (s *Server) FailNext(token []byte, n int) {
	s.mu.Lock()
	s.fail[hex.EncodeToString(token)] = n
	s.mu.Unlock()
}

// Throttle makes the next n pushes to token answer 429 TooManyRequests.
func (s *Server) Throttle(token []byte, n int) {
	s.mu.Lock()
	s.limit[hex.EncodeToString(token)] = n
	s.mu.Unlock()
}

// Hang makes pushes to token never answered: the request stays open until
// the client gives up or the stand-in closes.
func (s *Server) Hang(token []byte) {
	s.mu.Lock()
	s.hang[hex.EncodeToString(token)] = true
	s.mu.Unlock()
}

// Delay makes every accepted push wait d before its answer (0: none).
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// MaxInFlight is the most requests the stand-in was handling at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Listen returns a channel receiving every push to token.
func (s *Server) Listen(token []byte) <-chan Push {
	ch := make(chan Push, 64)
	s.mu.Lock()
	s.notify[hex.EncodeToString(token)] = ch
	s.mu.Unlock()
	return ch
}

// Count is the number of pushes accepted so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Forget stops notifying about token.
func (s *Server) Forget(token []byte) {
	s.mu.Lock()
	delete(s.notify, hex.EncodeToString(token))
	s.mu.Unlock()
}

// Pushes returns the pushes received so far (the latest 10,000 at most).
func (s *Server) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

func apnsError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"reason":%q}`, reason)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if r.ProtoMajor != 2 {
		apnsError(w, http.StatusBadRequest, "HTTP2Required")
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/3/device/") {
		apnsError(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
		return
	}
	tokHex := strings.TrimPrefix(r.URL.Path, "/3/device/")
	tok, err := hex.DecodeString(tokHex)
	if err != nil || len(tok) == 0 {
		apnsError(w, http.StatusBadRequest, "BadDeviceToken")
		return
	}
	var client *x509.Certificate
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		client = r.TLS.PeerCertificates[0]
	}
	topic := r.Header.Get("apns-topic")
	if r.Header.Get("apns-push-type") != "mdm" {
		apnsError(w, http.StatusBadRequest, "InvalidPushType")
		return
	}
	if client == nil || !certHasTopic(client, topic) {
		apnsError(w, http.StatusBadRequest, "TopicDisallowed")
		return
	}
	var body struct {
		MDM string `json:"mdm"`
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	if json.Unmarshal(b, &body) != nil || body.MDM == "" {
		apnsError(w, http.StatusBadRequest, "PayloadEmpty")
		return
	}
	s.mu.Lock()
	if reason, ok := s.dead[tokHex]; ok {
		s.mu.Unlock()
		if reason == "" || reason == "Unregistered" {
			apnsError(w, http.StatusGone, "Unregistered")
		} else {
			apnsError(w, http.StatusBadRequest, reason)
		}
		return
	}
	if n := s.fail[tokHex]; n > 0 {
		s.fail[tokHex] = n - 1
		s.mu.Unlock()
		apnsError(w, http.StatusServiceUnavailable, "ServiceUnavailable")
		return
	}
	if n := s.limit[tokHex]; n > 0 {
		s.limit[tokHex] = n - 1
		s.mu.Unlock()
		apnsError(w, http.StatusTooManyRequests, "TooManyRequests")
		return
	}
	if s.hang[tokHex] {
		s.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	delay := s.delay
	p := Push{Token: tok, Topic: topic, PushMagic: body.MDM, Client: client, At: time.Now()}
	s.total++
	if len(s.pushes) >= maxKept {
		s.pushes = append(s.pushes[:0], s.pushes[len(s.pushes)-maxKept/2:]...)
	}
	s.pushes = append(s.pushes, p)
	ch := s.notify[tokHex]
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if ch != nil {
		select {
		case ch <- p:
		default:
		}
	}
	id := make([]byte, 16)
	rand.Read(id)
	w.Header().Set("apns-id", fmt.Sprintf("%X-%X-%X-%X-%X", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16]))
	w.WriteHeader(http.StatusOK)
}

// certHasTopic checks the client certificate's UID against the topic.
func certHasTopic(c *x509.Certificate, topic string) bool {
	for _, n := range c.Subject.Names {
		if n.Type.String() == "0.9.2342.19200300.100.1.1" && fmt.Sprint(n.Value) == topic {
			return true
		}
	}
	return false
}
