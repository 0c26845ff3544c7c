package api

import (
	"encoding/base64"
	"net/http"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/pushcert"
)

func (a *API) pushView(c *pushcert.Cert) apitypes.PushCert {
	w := c.Problems(a.Now())
	if w == nil {
		w = []string{}
	}
	return apitypes.PushCert{Topic: c.Topic, Subject: c.Cert.Subject.String(), Issuer: c.Cert.Issuer.String(), IssuedByApple: c.IssuedByApple,
		NotBefore: c.Cert.NotBefore, NotAfter: c.Cert.NotAfter, DaysLeft: int(c.Cert.NotAfter.Sub(a.Now()).Hours() / 24), Warnings: w}
}

func (a *API) getPushCert(w http.ResponseWriter, r *http.Request) error {
	c, err := a.App.PushCerts.Get(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, a.pushView(c))
	return nil
}

func (a *API) putPushCert(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.PushCertUpload
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	up := app.PushCertUpload{Password: in.Password, AllowTopicChange: in.AllowTopicChange}
	if in.Certificate != "" {
		up.CertPEM, up.KeyPEM = []byte(in.Certificate), []byte(in.PrivateKey)
	}
	if in.PKCS12 != "" {
		raw, err := base64.StdEncoding.DecodeString(in.PKCS12)
		if err != nil {
			if in.Certificate == "" {
				return problem.Coded(problem.Invalid, "invalid_request", "pkcs12 must be base64")
			}
			raw = []byte(in.PKCS12) // both given: Import refuses the pair
		}
		up.PKCS12 = raw
	}
	c, err := a.App.PushCerts.Import(r.Context(), up)
	if err != nil {
		return err
	}
	for _, p := range c.Problems(a.Now()) {
		a.Log.Warn("push certificate: " + p)
	}
	a.Log.Info("push certificate imported", "topic", c.Topic, "not_after", c.Cert.NotAfter, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, a.pushView(c))
	return nil
}

func (a *API) pushCSR(w http.ResponseWriter, r *http.Request) error {
	csr, err := a.App.PushCerts.CSR(r.Context())
	if err != nil {
		return err
	}
	a.Log.Info("push certificate CSR created", "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, apitypes.CSR{CSR: string(csr),
		Next: "Have the CSR signed with an MDM vendor certificate (Apple Developer Program: 'MDM CSR' certificate), upload the signed request at https://identity.apple.com/pushcert, " +
			"download the certificate and import it: pomona push-cert import --cert MDM_Certificate.pem (the key stays on this server).",
	})
	return nil
}
