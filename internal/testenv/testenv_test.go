package testenv

import (
	"os"
	"strings"
	"testing"
)

// requestLogs starts a server, makes one request (which the HTTP
// middleware logs at debug) and returns the server's log.
func requestLogs(t testing.TB) string {
	e := Start(t)
	resp, err := e.Client.Get(e.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	b, err := os.ReadFile(e.Logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Benchmarks log at the production level (info): no debug record per
// request in their profiles. Tests keep debug for their failure output.
func TestBenchmarksLogAtInfo(t *testing.T) {
	var logs string
	testing.Benchmark(func(b *testing.B) {
		for range b.N {
		}
		logs = requestLogs(b)
	})
	if logs == "" || strings.Contains(logs, "level=DEBUG") {
		t.Errorf("a benchmark's server log has debug records (or none at all):\n%s", logs)
	}
	if l := requestLogs(t); !strings.Contains(l, "level=DEBUG") {
		t.Errorf("a test's server log has no debug record:\n%s", l)
	}
}
