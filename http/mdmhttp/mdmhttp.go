// Package mdmhttp serves the MDM check-in (PUT /mdm/checkin) and command
// (PUT /mdm/connect) endpoints: it reads the body within bounds, takes the
// device identity from Mdm-Signature or a client certificate, and writes
// what mdmservice answers.
//
// Both take PUT only (else 405), with Content-Type
// application/x-apple-aspen-mdm-checkin (check-in, at most mdm.MaxCheckin
// bytes) or application/x-apple-aspen-mdm (command, at most mdm.MaxResult
// bytes); another type is 415, a larger body 413, an unreadable one 400.
// Every other status comes from render, the one place mdmservice's
// errors become HTTP.
//
// Apple: "Check-in", https://developer.apple.com/documentation/devicemanagement/check-in;
// "Sending MDM commands to a device",
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device;
// ErrorUnrecognizedDevice,
// https://developer.apple.com/documentation/devicemanagement/errorunrecognizeddevice.
package mdmhttp

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/metrics"
)

// Channel is the MDM channel the handler serves (mdmservice.Channel).
type Channel interface {
	Checkin(ctx context.Context, r *mdmservice.Request) (*mdmservice.Answer, error)
	Command(ctx context.Context, r *mdmservice.Request) (*mdmservice.Answer, error)
}

// AdmitAbove is the body size (bytes, from Content-Length; an unknown
// length counts as larger) above which the handler asks Admitter before
// reading the body: a check-in's bound (mdm.MaxCheckin), far above an idle
// poll or a usual result, so those are read at once as before.
const AdmitAbove = mdm.MaxCheckin

// Admitter is what a Channel may also do: say from the headers alone
// (Mdm-Signature's signer, the client certificate) whether the request
// claims an identity worth reading a large body for
// (mdmservice.Channel.Admit). Errors are answered as the service's.
type Admitter interface {
	Admit(r *mdmservice.Request) error
}

// Handler serves one of the two endpoints: the check-in endpoint
// (Apple, "Check-in": https://developer.apple.com/documentation/devicemanagement/check-in)
// or the command endpoint (the ServerURL; "Sending MDM commands to a
// device": https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device).
type Handler struct {
	Service Channel
	// Checkin selects the check-in endpoint; otherwise the command endpoint.
	Checkin bool
	// ClientCertHeader, when set, is the header a TLS-terminating proxy puts
	// the client certificate in (URL-escaped PEM, as nginx's
	// $ssl_client_escaped_cert). It is honoured only when the request's TCP
	// peer is one of TrustedProxies: from anyone else it is ignored (the
	// request then needs Mdm-Signature), since a device's certificate is
	// public and the header proves no possession of its key.
	ClientCertHeader string
	TrustedProxies   []netip.Prefix
	Log              *slog.Logger
	Metrics          *metrics.Metrics
	// Arrive, when set, is told of each request while the service handles
	// it (from after its body has been read until the service answers;
	// leave is called then): SQLite's group commit waits for the writes
	// of requests in progress (sqlstore.Store.Arrive). Not before the body
	// is in: a client holding requests open with unsent bodies (anyone can,
	// up to the read timeout) would count as writers about to commit and
	// make every durable batch wait the whole commit delay. Not while the
	// answer is written to a client that may not read it.
	Arrive func() (leave func())
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint, want, max := "command", "application/x-apple-aspen-mdm", int64(mdm.MaxResult)
	if h.Checkin {
		endpoint, want, max = "checkin", "application/x-apple-aspen-mdm-checkin", int64(mdm.MaxCheckin)
	}
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "use PUT", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != want && mediaType(ct) != want {
		h.Log.Info("MDM request refused: wrong content type", "endpoint", endpoint, "content_type", r.Header.Get("Content-Type"), "remote", r.RemoteAddr)
		http.Error(w, "Content-Type must be "+want, http.StatusUnsupportedMediaType)
		h.Metrics.MDM.WithLabelValues(endpoint, "415").Inc()
		return
	}
	req := mdmservice.Request{Signature: r.Header.Get("Mdm-Signature"), Authorization: r.Header.Get("Authorization")}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.ClientCert = r.TLS.PeerCertificates[0]
	} else if v := h.forwardedCert(r); v != "" {
		if httpx.FromTrustedProxy(r, h.TrustedProxies) {
			req.ClientCert = certFromHeader(v)
		} else {
			h.Log.Info("MDM request: client certificate header from a peer that is not a trusted proxy ignored",
				"endpoint", endpoint, "header", h.ClientCertHeader, "peer", httpx.Peer(r))
		}
	}
	// A body that may be larger than a check-in is read only for a request
	// claiming an identity of Pomona's CA: the body is read before the
	// signature over it can be checked, and anyone could otherwise make
	// the server hold mdm.MaxResult (8 MiB, more while io.ReadAll grows
	// its buffer) per connection — 60 such requests without any
	// credential took the process from 35 MB to 516 MB.
	if a, ok := h.Service.(Admitter); ok && (r.ContentLength < 0 || r.ContentLength > AdmitAbove) {
		if err := a.Admit(&req); err != nil {
			w.Header().Set("Connection", "close") // the unread body is not drained
			resp := render(nil, err)
			h.Metrics.MDM.WithLabelValues(endpoint, httpx.StatusLabel(resp.status)).Inc()
			h.Log.Info("MDM "+endpoint+": large body refused before reading it", "status", resp.status, "reason", resp.reason, "remote", r.RemoteAddr, "content_length", r.ContentLength)
			resp.write(w)
			return
		}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, max), r.ContentLength, max)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		h.Metrics.MDM.WithLabelValues(endpoint, "413").Inc()
		return
	}
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	req.Body = body
	ans, err := h.serve(r.Context(), &req)
	resp := render(ans, err)
	h.Metrics.MDM.WithLabelValues(endpoint, httpx.StatusLabel(resp.status)).Inc()
	level := slog.LevelDebug
	if resp.status >= 400 {
		level = slog.LevelInfo
	}
	if resp.status >= 500 {
		level = slog.LevelError // the cause of a 500 is only here
	}
	if h.Log.Enabled(r.Context(), level) { // most answers are debug-level: skip building the record
		h.Log.Log(r.Context(), level, "MDM "+endpoint, "status", resp.status, "reason", resp.reason, "remote", r.RemoteAddr)
	}
	resp.write(w)
}

// serve has the service handle req, counted by Arrive meanwhile (also
// when the service panics: a count left behind would make every later
// batch wait).
func (h *Handler) serve(ctx context.Context, req *mdmservice.Request) (*mdmservice.Answer, error) {
	if h.Arrive != nil {
		defer h.Arrive()()
	}
	if h.Checkin {
		return h.Service.Checkin(ctx, req)
	}
	return h.Service.Command(ctx, req)
}

// readBody is io.ReadAll of body (a MaxBytesReader of at most max bytes)
// sized by the request's Content-Length when it states one within max:
// io.ReadAll starts at 512 bytes and grows by appending, seven more
// allocations and as many copies for a device's 3 KiB result
// (TestHandlerReadsTheBodyOnce), one here. The length is only a hint: a
// body shorter or longer than it is read whole all the same, and
// MaxBytesReader still bounds it (its error is returned as io.ReadAll's
// would be). A stated length above preallocMax is not trusted with an
// allocation before the bytes arrive (the body is read before the
// signature is checked: anyone could state 8 MiB and send nothing); such
// a body grows as io.ReadAll's does.
func readBody(body io.Reader, length, max int64) ([]byte, error) {
	if length <= 0 || length > max || length > preallocMax {
		return io.ReadAll(body)
	}
	// One byte more than stated, so that the read meeting io.EOF needs
	// no larger buffer.
	b := make([]byte, 0, length+1)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) { // longer than stated: grow as io.ReadAll does
			b = append(b, 0)[:len(b)]
		}
	}
}

// preallocMax bounds readBody's allocation from a stated Content-Length:
// results and check-ins are a few KiB; the rare larger one (an app or
// certificate list) grows as before.
const preallocMax = 64 << 10

// mediaType is ct's media type (mime.ParseMediaType, "" when it does not
// parse). The handler asks it only when ct is not exactly the wanted type,
// which is what devices send: ParseMediaType of that returns it
// unchanged, and its parameter map cost an allocation a request.
func mediaType(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

func (h *Handler) forwardedCert(r *http.Request) string {
	if h.ClientCertHeader == "" {
		return ""
	}
	return r.Header.Get(h.ClientCertHeader)
}

func certFromHeader(v string) *x509.Certificate {
	s, err := url.QueryUnescape(v)
	if err != nil {
		return nil
	}
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c
}
