// Package scephttp serves SCEP (RFC 8894) at /scep for device identity
// certificates: GetCACaps, GetCACert and PKIOperation (GET and POST). The
// wire format is smallstep/scep's; who gets a certificate is decided by
// package enroll (a one-time challenge, from the enrollment profile or a
// re-sent one that renews the identity).
//
// RFC 8894: GET and POST §4.1, GetCACaps §3.5, GetCACert §4.2,
// PKIOperation (PKCSReq, RenewalReq) §4.3;
// the device side is Apple's SCEP payload,
// https://developer.apple.com/documentation/devicemanagement/scep
package scephttp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/smallstep/pkcs7"
	"github.com/smallstep/scep"

	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/untrusted"
)

func init() {
	// pkcs7's default content cipher is single DES; answer with AES (which
	// GetCACaps advertises and every Apple client supports).
	pkcs7.ContentEncryptionAlgorithm = pkcs7.EncryptionAlgorithmAES128CBC
}

// MaxMessage bounds a PKIOperation message, in bytes (a PKCSReq with a
// 2048-bit key is about 4 KiB).
const MaxMessage = 64 << 10

// messageASN1 bounds the PKIMessage and its enveloped content (package
// untrusted checks both before smallstep/scep parses them).
var messageASN1 = untrusted.ASN1Limits{MaxSize: MaxMessage, MaxDepth: 32, MaxElements: 4096}

// Caps is the GetCACaps answer (RFC 8894 §3.5.2): one capability a line.
const Caps = "SHA-256\nSHA-1\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation\n"

// Issuer decides and issues identity certificates.
type Issuer interface {
	IssueForSCEPChallenge(ctx context.Context, csr *x509.CertificateRequest, challenge string) (*x509.Certificate, *store.Enrollment, error)
}

// Handler serves /scep?operation=…: GetCACaps answers Caps (text/plain);
// GetCACert the RA and CA certificates as a degenerate CMS
// (application/x-x509-ca-ra-cert, RFC 8894 §3.4, §4.2); PKIOperation (POST
// body, or GET with the message base64 in message, at most MaxMessage
// bytes) a CertRep (application/x-pki-message, RFC 8894 §4.3) with the
// certificate, or FAILURE with failInfo badRequest when Issuer refuses the
// challenge. An unknown operation or unreadable, undecryptable or
// unsupported message is 400, another method 405.
type Handler struct {
	PKI     *pki.Issuer
	Issuer  Issuer
	Log     *slog.Logger
	Metrics *metrics.Metrics
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.URL.Query().Get("operation")
	switch op {
	case "GetCACaps":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, Caps)
		h.Metrics.SCEP.WithLabelValues(op, "ok").Inc()
	case "GetCACert":
		der, err := scep.DegenerateCertificates([]*x509.Certificate{h.PKI.SCEPRA, h.PKI.CA.Cert})
		if err != nil {
			h.Log.Error("SCEP GetCACert", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-x509-ca-ra-cert")
		w.Write(der)
		h.Metrics.SCEP.WithLabelValues(op, "ok").Inc()
	case "PKIOperation":
		h.pkiOperation(w, r)
	default:
		h.Metrics.SCEP.WithLabelValues("unknown", "bad-request").Inc()
		http.Error(w, "unknown SCEP operation: use GetCACaps, GetCACert or PKIOperation", http.StatusBadRequest)
	}
}

// errTooLarge: a GET's message parameter is over the bound.
var errTooLarge = errors.New("message too large")

func (h *Handler) pkiOperation(w http.ResponseWriter, r *http.Request) {
	var msg []byte
	var err error
	switch r.Method {
	case http.MethodPost:
		msg, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMessage))
	case http.MethodGet:
		m := r.URL.Query().Get("message")
		if len(m) > MaxMessage*2 {
			err = errTooLarge
		} else {
			msg, err = base64.StdEncoding.DecodeString(m)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	log := h.Log.With("remote", r.RemoteAddr)
	if err != nil || len(msg) == 0 {
		h.Metrics.SCEP.WithLabelValues("PKIOperation", "bad-message").Inc()
		log.Info("SCEP: unreadable message", "err", err)
		// Too large is said as such (413, as every other bounded body):
		// a client, or the admin reading its log, learns the bound.
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, errTooLarge) {
			http.Error(w, fmt.Sprintf("the SCEP message is larger than %d bytes", MaxMessage), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the SCEP message", http.StatusBadRequest)
		return
	}
	req, err := untrusted.ParseSCEP(msg, messageASN1)
	if err != nil {
		h.Metrics.SCEP.WithLabelValues("PKIOperation", "bad-message").Inc()
		log.Info("SCEP: malformed PKI message", "err", err)
		http.Error(w, "malformed SCEP message", http.StatusBadRequest)
		return
	}
	switch req.MessageType {
	case scep.PKCSReq, scep.RenewalReq, scep.UpdateReq:
	default:
		h.Metrics.SCEP.WithLabelValues("PKIOperation", "bad-message").Inc()
		http.Error(w, "unsupported SCEP message type", http.StatusBadRequest)
		return
	}
	if err := req.Decrypt(h.PKI.SCEPRA, h.PKI.SCEPRAKey); err != nil {
		h.Metrics.SCEP.WithLabelValues("PKIOperation", "bad-message").Inc()
		log.Info("SCEP: cannot decrypt the request (not encrypted to our RA?)", "err", err)
		http.Error(w, "cannot decrypt the SCEP request", http.StatusBadRequest)
		return
	}
	// Every certificate needs a one-time challenge, renewals included (in
	// the re-sent enrollment profile): a RenewalReq without one is refused.
	kind := req.MessageType.String()
	cert, e, err := h.Issuer.IssueForSCEPChallenge(r.Context(), req.CSR, req.ChallengePassword)
	if err != nil {
		result := "refused"
		if !isRefusal(err) {
			result = "error"
			log.Error("SCEP: issuance failed", "kind", kind, "err", err)
		} else {
			log.Info("SCEP: certificate refused", "kind", kind, "err", err)
		}
		h.Metrics.SCEP.WithLabelValues("PKIOperation", result).Inc()
		fail, ferr := req.PKIMessage.Fail(h.PKI.SCEPRA, h.PKI.SCEPRAKey, scep.BadRequest)
		if ferr != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-pki-message")
		w.Write(fail.Raw)
		return
	}
	rep, err := req.PKIMessage.Success(h.PKI.SCEPRA, h.PKI.SCEPRAKey, cert)
	if err != nil {
		log.Error("SCEP: cannot build the answer", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.Metrics.SCEP.WithLabelValues("PKIOperation", "issued").Inc()
	log.Info("SCEP: identity certificate issued", "kind", kind, "enrollment", e.ID, "serial", pki.SerialHex(cert), "not_after", cert.NotAfter)
	w.Header().Set("Content-Type", "application/x-pki-message")
	w.Write(rep.Raw)
}

func isRefusal(err error) bool {
	for _, e := range []error{enroll.ErrNoSCEPChallenge, enroll.ErrBadSCEPChallenge, enroll.ErrSCEPChallengeUsed, enroll.ErrSCEPChallengeExpired, enroll.ErrEnded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
