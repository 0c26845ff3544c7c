package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/seal"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

func TestParseKeyType(t *testing.T) {
	for _, s := range []string{"ecdsa-p256", "RSA-2048", "rsa-4096"} {
		if _, err := ParseKeyType(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseKeyType("dsa-1024"); err == nil {
		t.Fatal("dsa accepted")
	}
}

func TestCAIssuesWorkingTLSCert(t *testing.T) {
	now := time.Now()
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		ca, err := NewCA("Test CA", kt, now)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.Cert.IsCA {
			t.Fatal("not a CA")
		}
		cert, key, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, ECDSAP256, now)
		if err != nil {
			t.Fatal(err)
		}
		if cert.NotAfter.Sub(cert.NotBefore) > 825*24*time.Hour {
			t.Fatal("validity over Apple's 825-day limit")
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}}
		srv.StartTLS()
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("%s: TLS with issued cert: %v", kt, err)
		}
		resp.Body.Close()
		srv.Close()
	}
}

func TestParsePair(t *testing.T) {
	ca, _ := NewCA("x", ECDSAP256, time.Now())
	kp, _ := KeyPEM(ca.Key)
	if _, _, err := ParsePair(append(CertPEM(ca.Cert), kp...)); err != nil {
		t.Fatal(err)
	}
	other, _ := NewCA("y", ECDSAP256, time.Now())
	okp, _ := KeyPEM(other.Key)
	if _, _, err := ParsePair(append(CertPEM(ca.Cert), okp...)); err == nil {
		t.Fatal("mismatched pair accepted")
	}
	if _, _, err := ParsePair([]byte("junk")); err == nil {
		t.Fatal("junk accepted")
	}
}

func TestLoadOrCreateCAIsSharedAndSealed(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, _ := seal.ParseKey(seal.NewKey())
	sealer, _ := seal.New(key)
	var wg sync.WaitGroup
	cas := make([]*CA, 4)
	created := make([]bool, 4)
	for i := range cas {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var err error
			cas[i], created[i], err = LoadOrCreateCA(ctx, st, sealer, ECDSAP256, time.Now())
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	n := 0
	for i := range cas {
		if created[i] {
			n++
		}
		if cas[i] == nil || !cas[i].Cert.Equal(cas[0].Cert) {
			t.Fatal("instances disagree on the CA")
		}
	}
	if n != 1 {
		t.Fatalf("%d instances created a CA", n)
	}
	raw, _ := st.Secret(ctx, caSecret)
	if len(raw) == 0 || string(raw[:5]) == "-----" {
		t.Fatal("CA stored unsealed")
	}
	otherKey, _ := seal.ParseKey(seal.NewKey())
	other, _ := seal.New(otherKey)
	if _, _, err := LoadOrCreateCA(ctx, st, other, ECDSAP256, time.Now()); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("wrong sealing key: %v", err)
	}

	c1, _, err := ServerCert(ctx, st, sealer, cas[0], "mdm.example.net", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c2, _, _ := ServerCert(ctx, st, sealer, cas[0], "mdm.example.net", time.Now())
	if !c1.Equal(c2) {
		t.Fatal("TLS cert re-issued on every start")
	}
	c3, _, _ := ServerCert(ctx, st, sealer, cas[0], "mdm.example.net", time.Now().Add(380*24*time.Hour))
	if c1.Equal(c3) {
		t.Fatal("TLS cert close to expiry not renewed")
	}
}
