// Package pkihttp publishes the revocation status of the certificates
// Pomona's CA issues (docs/security.md, "Revocation"): the CA certificate,
// the CRL (RFC 5280 §5; RFC 2585 §4.2 for the media type) and an OCSP
// responder (RFC 6960, GET and POST forms of Appendix A.1). Thin: the CRL
// and the answers come from app.Revocation.
package pkihttp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// Paths, under Prefix. The server routes every path under Prefix here
// before its mux: an OCSP GET request's base64 may hold "//", which the
// mux would redirect.
const (
	Prefix   = "/pki/"
	CRLPath  = "/pki/crl"
	OCSPPath = "/pki/ocsp"
	CAPath   = "/pki/ca"
)

// Revocation is what the handler needs (app.Revocation).
type Revocation interface {
	CRL(ctx context.Context) (*store.CRLState, error)
	OCSP(ctx context.Context, req []byte) ([]byte, error)
}

// Handler serves Prefix.
type Handler struct {
	Revocation Revocation
	// CACert is the CA certificate, DER.
	CACert []byte
	Log    *slog.Logger
}

// maxGETPath bounds an OCSP GET request's path: the base64 of
// MaxOCSPRequest bytes, every character percent-encoded.
const maxGETPath = (pki.MaxOCSPRequest+2)/3*4*3 + len(OCSPPath) + 1

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == CRLPath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.crl(w, r)
	case p == CAPath && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Content-Length", strconv.Itoa(len(h.CACert)))
		w.Write(h.CACert)
	case p == OCSPPath && r.Method == http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pki.MaxOCSPRequest+1))
		if err != nil && !errors.As(err, new(*http.MaxBytesError)) {
			http.Error(w, "cannot read the request", http.StatusBadRequest)
			return
		}
		// An oversized body is cut at MaxOCSPRequest+1: RespondOCSP
		// answers malformedRequest without parsing it.
		h.ocsp(w, r, body)
	case strings.HasPrefix(p, OCSPPath+"/") && r.Method == http.MethodGet:
		if len(p) > maxGETPath {
			h.write(w, ocsp.MalformedRequestErrorResponse, 0)
			return
		}
		der, err := decodeGET(strings.TrimPrefix(p, OCSPPath+"/"))
		if err != nil {
			h.write(w, ocsp.MalformedRequestErrorResponse, 0)
			return
		}
		h.ocsp(w, r, der)
	case p == CRLPath || p == CAPath || p == OCSPPath || strings.HasPrefix(p, OCSPPath+"/"):
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		http.NotFound(w, r)
	}
}

// decodeGET reads the GET form: the URL encoding of the base64 of the DER
// (RFC 6960 Appendix A.1); clients differ in padding and in escaping.
func decodeGET(s string) ([]byte, error) {
	s, err := url.PathUnescape(s)
	if err != nil {
		return nil, err
	}
	s = strings.TrimRight(s, "=")
	return base64.RawStdEncoding.DecodeString(s)
}

func (h *Handler) crl(w http.ResponseWriter, r *http.Request) {
	c, err := h.Revocation.CRL(r.Context())
	if err != nil {
		h.Log.Error("cannot make the CRL", "err", err)
		http.Error(w, "the CRL is unavailable, try again", http.StatusServiceUnavailable)
		return
	}
	etag := fmt.Sprintf(`"crl-%d"`, c.Number)
	w.Header().Set("ETag", etag)
	w.Header().Set("Last-Modified", c.ThisUpdate.UTC().Format(http.TimeFormat))
	// Caches may keep it a little; relying parties keep it until
	// nextUpdate anyway, and a revocation must reach those that ask.
	w.Header().Set("Cache-Control", "public, max-age=60")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Content-Length", strconv.Itoa(len(c.DER)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(c.DER)
}

func (h *Handler) ocsp(w http.ResponseWriter, r *http.Request, req []byte) {
	resp, err := h.Revocation.OCSP(r.Context(), req)
	var oe *pki.OCSPError
	switch {
	case errors.As(err, &oe):
		h.Log.Info("OCSP request refused", "reason", oe.Reason, "remote", r.RemoteAddr)
		h.write(w, oe.Response, 0)
	case err != nil:
		h.Log.Error("OCSP lookup failed", "err", err)
		h.write(w, ocsp.TryLaterErrorResponse, 0)
	default:
		h.write(w, resp, pki.OCSPValidity)
	}
}

// write sends an OCSP response (RFC 6960 Appendix A.1: 200 with
// application/ocsp-response, error responses included).
func (h *Handler) write(w http.ResponseWriter, b []byte, cache time.Duration) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if cache > 0 {
		// Short: a revocation must show in the next answer (RFC 5019 §6.2
		// lets it be up to nextUpdate; Pomona keeps it at a minute).
		w.Header().Set("Cache-Control", "public, max-age=60, no-transform, must-revalidate")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Write(b)
}
