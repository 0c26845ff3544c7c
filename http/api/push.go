package api

import (
	"context"
	"encoding/base64"
	"errors"
	"github.com/pomona-mdm/pomona/apitypes"
	"net/http"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/pushcert"
)

// PushCerts is where the API keeps the push certificate.
type PushCerts interface {
	Load(ctx context.Context) (*pushcert.Cert, error)
	Save(ctx context.Context, c *pushcert.Cert) error
	SaveCSRKey(ctx context.Context, c *pushcert.Cert) error
	// Changed tells the server the certificate changed (metrics, caches).
	Changed(c *pushcert.Cert)
}

func (a *API) pushView(c *pushcert.Cert) apitypes.PushCert {
	w := c.Problems(a.Now())
	if w == nil {
		w = []string{}
	}
	return apitypes.PushCert{Topic: c.Topic, Subject: c.Cert.Subject.String(), Issuer: c.Cert.Issuer.String(), IssuedByApple: c.IssuedByApple,
		NotBefore: c.Cert.NotBefore, NotAfter: c.Cert.NotAfter, DaysLeft: int(c.Cert.NotAfter.Sub(a.Now()).Hours() / 24), Warnings: w}
}

func (a *API) getPushCert(w http.ResponseWriter, r *http.Request) error {
	c, err := a.Push.Load(r.Context())
	if errors.Is(err, pushcert.ErrNone) {
		return problem.Coded(problem.NotFound, "not_found", "%v", err)
	}
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, a.pushView(c))
	return nil
}

func (a *API) putPushCert(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Certificate string `json:"certificate"`
		PrivateKey  string `json:"private_key"`
		PKCS12      string `json:"pkcs12"`
		Password    string `json:"password"`
		// AllowTopicChange must be set to replace a certificate with one of
		// another topic: every enrolled device would stop answering pushes.
		AllowTopicChange bool `json:"allow_topic_change"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	var c *pushcert.Cert
	var err error
	switch {
	case in.PKCS12 != "" && in.Certificate != "":
		return problem.Coded(problem.Invalid, "invalid_request", "give either certificate (+ private_key) or pkcs12, not both")
	case in.PKCS12 != "":
		raw, derr := base64.StdEncoding.DecodeString(in.PKCS12)
		if derr != nil {
			return problem.Coded(problem.Invalid, "invalid_request", "pkcs12 must be base64")
		}
		c, err = pushcert.ParsePKCS12(raw, in.Password)
	case in.Certificate != "":
		c, err = pushcert.ParsePEM([]byte(in.Certificate), []byte(in.PrivateKey))
	default:
		return problem.Coded(problem.Invalid, "invalid_request", "give certificate (PEM, with private_key unless the CSR was made by this server) or pkcs12 (base64) with password")
	}
	if err != nil {
		return problem.Coded(problem.Unprocessable, "invalid_certificate", "%v", err)
	}
	old, err := a.Push.Load(r.Context())
	if err != nil && !errors.Is(err, pushcert.ErrNone) {
		return err
	}
	if err := pushcert.CheckReplacement(old, c, in.AllowTopicChange, a.Now()); err != nil {
		if errors.Is(err, pushcert.ErrTopicChange) {
			return problem.Coded(problem.Conflict, "topic_change", "%s (allow_topic_change=true)", err.Error())
		}
		return problem.Coded(problem.Unprocessable, "invalid_certificate", "%v", err)
	}
	if err := a.Push.Save(r.Context(), c); err != nil {
		return problem.Coded(problem.Unprocessable, "invalid_certificate", "%v", err)
	}
	a.Push.Changed(c)
	for _, p := range c.Problems(a.Now()) {
		a.Log.Warn("push certificate: " + p)
	}
	a.Log.Info("push certificate imported", "topic", c.Topic, "not_after", c.Cert.NotAfter, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, a.pushView(c))
	return nil
}

func (a *API) pushCSR(w http.ResponseWriter, r *http.Request) error {
	csr, key, err := pushcert.NewCSR("Pomona MDM push")
	if err != nil {
		return err
	}
	if err := a.Push.SaveCSRKey(r.Context(), &pushcert.Cert{Key: key}); err != nil {
		return err
	}
	a.Log.Info("push certificate CSR created", "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, map[string]string{
		"csr": string(csr),
		"next": "Have the CSR signed with an MDM vendor certificate (Apple Developer Program: 'MDM CSR' certificate), upload the signed request at https://identity.apple.com/pushcert, " +
			"download the certificate and import it: pomona push-cert import --cert MDM_Certificate.pem (the key stays on this server).",
	})
	return nil
}

func (a *API) reauthenticate(w http.ResponseWriter, r *http.Request) error {
	cur, err := a.userRef(r)
	if err != nil {
		return err
	}
	u, err := a.Dir.Reauthenticate(r.Context(), cur.ID)
	if err != nil {
		return err
	}
	a.Log.Info("user must re-authenticate: access tokens revoked", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}
