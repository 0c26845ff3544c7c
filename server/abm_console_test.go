package server_test

import (
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/abm/abmstub"
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

// The console's Apple Business Manager page: make a key pair, download its
// certificate, import the token (a foreign one is refused with the
// reason), register and remove fallback discovery with Apple's refusal in
// plain words, remove the token; an auditor sees the page without forms.
func TestConsoleABM(t *testing.T) {
	clk := &consoleClock{}
	stub := abmstub.New()
	srv := httptest.NewServer(stub.Handler())
	t.Cleanup(srv.Close)
	w := newWorldWith(t, func(c *server.Config) { c.ConsoleClock = clk.now; c.ABMURL = srv.URL })
	o := newConsoleUser(t, w, clk, "owner@ops.example", store.RoleOwner)
	org := &abmstub.Org{Name: "Example Corp", Domains: []string{"example.com"}}

	if code, body := o.get("/console/abm"); code != 200 || !strings.Contains(body, "No server tokens") {
		t.Fatalf("empty page: %d %.300s", code, body)
	}
	code, body := o.post("/console/abm", url.Values{"tenant": {w.tenant}, "name": {"Main"}})
	if code != 200 || !strings.Contains(body, "Key pair for Main made") || !strings.Contains(body, "Upload Public Key") {
		t.Fatalf("create: %d %.500s", code, body)
	}
	id := regexp.MustCompile(`/console/abm/(abm_[a-z0-9]+)/certificate`).FindStringSubmatch(body)
	if id == nil {
		t.Fatalf("no certificate link: %.500s", body)
	}
	code, pemText := o.get("/console/abm/" + id[1] + "/certificate")
	if code != 200 || !strings.Contains(pemText, "BEGIN CERTIFICATE") {
		t.Fatalf("certificate: %d", code)
	}
	row, _ := w.e.Server.ABM.Get(t.Context(), id[1])
	kp, err := w.e.Server.ABM.KeyPairOf(row)
	if err != nil {
		t.Fatal(err)
	}
	uuid := stub.AddServer(org, "Pomona MDM")
	other, _ := abm.NewKeyPair("other", time.Now())
	foreign, _ := stub.Token(uuid, other.Cert, time.Now().Add(365*24*time.Hour))
	if code, body := o.postMultipart("/console/abm/token", map[string]string{"id": id[1]}, map[string][]byte{"server_token": foreign}); code != 200 || !strings.Contains(body, "encrypted to another public key") {
		t.Fatalf("foreign token: %d %.500s", code, body)
	}
	file, _ := stub.Token(uuid, kp.Cert, time.Now().Add(365*24*time.Hour))
	if code, body := o.postMultipart("/console/abm/token", map[string]string{"id": id[1]}, map[string][]byte{"server_token": file}); code != 200 || !strings.Contains(body, "Pomona MDM (Example Corp) imported") || !strings.Contains(body, uuid) {
		t.Fatalf("import: %d %.500s", code, body)
	}
	if code, body := o.post("/console/abm/discovery", url.Values{"id": {id[1]}}); code != 200 || !strings.Contains(body, "registered with Apple") {
		t.Fatalf("register: %d %.500s", code, body)
	}
	stub.Update(func() { org.NoFallbackDiscovery = true })
	if code, body := o.post("/console/abm/discovery", url.Values{"id": {id[1]}}); code != 200 || !strings.Contains(body, "does not offer account-driven enrollment fallback discovery") {
		t.Fatalf("ORG_NOT_SUPPORTED: %d %.500s", code, body)
	}
	stub.Update(func() { org.NoFallbackDiscovery = false })
	if code, body := o.post("/console/abm/discovery/remove", url.Values{"id": {id[1]}}); code != 200 || !strings.Contains(body, "removed at Apple") {
		t.Fatalf("remove discovery: %d %.500s", code, body)
	}

	a := newConsoleUser(t, w, clk, "auditor@ops.example", store.RoleAuditor)
	if code, body := a.get("/console/abm"); code != 200 || !strings.Contains(body, uuid) || strings.Contains(body, `action="/console/abm"`) {
		t.Fatalf("auditor: %d", code)
	}
	if code, _ := a.post("/console/abm/delete", url.Values{"id": {id[1]}}); code == 200 {
		if got, err := w.e.Server.ABM.Get(t.Context(), id[1]); err != nil || got == nil {
			t.Fatal("an auditor removed a server token")
		}
	}
	if code, body := o.post("/console/abm/delete", url.Values{"id": {id[1]}}); code != 200 || !strings.Contains(body, "Server token removed") {
		t.Fatalf("delete: %d %.300s", code, body)
	}
}
