package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/store"
)

// The hot-path benchmarks run requests through the server's whole HTTP
// handler (routing, middleware, authentication, the services and the
// store: SQLite by default, PostgreSQL with POMONA_TEST_STORE=postgres)
// without TLS and without a network, so time and allocations are the
// server's alone. What a device does (signing its message) happens
// outside the timer. Run:
//
//	go test ./server -run '^$' -bench 'Idle$|RoundTrip|Enqueue$|Result$' -benchmem -count 8 | benchstat -
//
// docs/benchmarks.md has the figures and the profiles behind them.

// cpuMeter adds the process's CPU time (user + system, getrusage) over
// the timed parts of a benchmark and reports it per operation as
// "cpu-ns/op": on a shared machine it moves far less than wall time, and
// it counts what wall time hides (fsync's kernel work, the garbage
// collector on the other core).
//
// It also reports "goroutines/op", the goroutines started over the timed
// parts (runtime/metrics): database/sql and the SQLite driver start one to
// watch a cancellable context per query, which sqlstore avoids on the hot
// paths (Dialect.DetachHotReads, Tx.detach).
type cpuMeter struct {
	b      *testing.B
	total  time.Duration
	t0     time.Duration
	gs, g0 uint64
}

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newCPUMeter(b *testing.B) *cpuMeter {
	b.ReportAllocs()
	b.ResetTimer()
	m := &cpuMeter{b: b}
	m.start()
	return m
}

func (m *cpuMeter) start() { m.b.StartTimer(); m.t0 = processCPU(); m.g0 = goroutinesCreated() }
func (m *cpuMeter) stop() {
	m.total += processCPU() - m.t0
	m.gs += goroutinesCreated() - m.g0
	m.b.StopTimer()
}
func (m *cpuMeter) done() {
	m.stop()
	m.b.ReportMetric(float64(m.total.Nanoseconds())/float64(m.b.N), "cpu-ns/op")
	m.b.ReportMetric(float64(m.gs)/float64(m.b.N), "goroutines/op")
}

// hotDevice is an enrolled device whose requests the benchmark signs.
type hotDevice struct {
	*devicesim.Device
	url string // the MDM server URL's path
}

func newHotDevice(b *testing.B, w *world, user, pw string) *hotDevice {
	d := enrolledDevice(b, w, "iPhone", user, pw)
	u, err := url.Parse(d.Profile.ServerURL)
	if err != nil {
		b.Fatal(err)
	}
	return &hotDevice{Device: d, url: u.RequestURI()}
}

// signed is a device's MDM request (PUT to its ServerURL, signed with its
// identity key, with its bearer token), ready to be served again and again.
func (d *hotDevice) signed(b *testing.B, msg map[string]any) func() *http.Request {
	msg["EnrollmentID"] = d.MDM.EnrollmentID
	body, err := plist.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	sd, _ := pkcs7.NewSignedData(body)
	if err := sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{}); err != nil {
		b.Fatal(err)
	}
	sd.Detach()
	sig, _ := sd.Finish()
	sigB64 := base64.StdEncoding.EncodeToString(sig)
	return func() *http.Request {
		r := httptest.NewRequest(http.MethodPut, d.url, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-apple-aspen-mdm")
		r.Header.Set("Mdm-Signature", sigB64)
		r.Header.Set("Authorization", "Bearer "+d.AccessToken)
		return r
	}
}

// serve runs one request through the handler and returns the response.
// The request's context can be cancelled, as net/http's always can (it
// ends with the connection): httptest's is context.Background, whose
// Done is nil, and the watchers database/sql and the SQLite driver start
// only for a context that can end were then never measured.
func serve(b *testing.B, h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(ctx))
	if rec.Code != http.StatusOK && rec.Code != http.StatusCreated && rec.Code != http.StatusAccepted {
		b.Fatalf("%s %s: %d %s", r.Method, r.URL.Path, rec.Code, rec.Body)
	}
	return rec
}

// enqueueRequest is the admin API's single-device enqueue without a push
// (the API key checked, the JSON decoded and validated against the
// command catalogue, the command stored durably).
func enqueueRequest(w *world, enrollmentID string) *http.Request {
	body := `{"request_type":"DeviceInformation","queries":["OSVersion","ModelName"],"push":false}`
	r := httptest.NewRequest(http.MethodPost, "/api/v1/devices/"+enrollmentID+"/commands", bytes.NewReader([]byte(body)))
	r.Header.Set("Authorization", "Bearer "+w.e.APIKey)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func commandUUID(b *testing.B, rec *httptest.ResponseRecorder) string {
	var out struct {
		CommandUUID string `json:"command_uuid"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.CommandUUID == "" {
		b.Fatalf("enqueue answered %s", rec.Body)
	}
	return out.CommandUUID
}

// acknowledged is the device's signed answer to a DeviceInformation
// command.
func (d *hotDevice) acknowledged(b *testing.B, id string) func() *http.Request {
	return d.signed(b, map[string]any{"Status": "Acknowledged", "CommandUUID": id, "RequestType": "DeviceInformation",
		"QueryResponses": map[string]any{"OSVersion": "18.2", "ModelName": "iPhone"}})
}

// BenchmarkIdle: one signed idle check-in (Status Idle) with an empty
// queue: signature, identity, bearer token, last-seen, queue look-up.
func BenchmarkIdle(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := w.e.Server.Handler()
	idle := d.signed(b, map[string]any{"Status": "Idle"})
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		if rec := serve(b, h, idle()); rec.Body.Len() != 0 {
			b.Fatalf("idle answered a command: %s", rec.Body)
		}
	}
}

// BenchmarkIdleSeen: BenchmarkIdle where every poll is the channel's first
// in over a minute, so it also records the last-seen time (TouchChannel) —
// a real device polls when pushed, so this is its usual idle poll.
// Setting the last-seen time back is outside the timer.
func BenchmarkIdleSeen(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := w.e.Server.Handler()
	st := w.e.Server.Store
	ctx := context.Background()
	dr, err := st.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: hex.EncodeToString(d.IdentityCert.SerialNumber.Bytes()), ChannelKind: "device"})
	if err != nil || dr.Channel == nil {
		b.Fatalf("device request: %+v, %v", dr, err)
	}
	idle := d.signed(b, map[string]any{"Status": "Idle"})
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		m.stop()
		if err := st.TouchChannel(ctx, dr.Enrollment.ID, dr.Channel.ID, time.Now().Add(-2*time.Minute)); err != nil {
			b.Fatal(err)
		}
		m.start()
		if rec := serve(b, h, idle()); rec.Body.Len() != 0 {
			b.Fatalf("idle answered a command: %s", rec.Body)
		}
	}
	m.stop()
	if ch, err := st.Channel(ctx, dr.Enrollment.ID, "device", ""); err != nil || time.Since(ch.LastSeenAt) > time.Minute {
		b.Fatalf("the last poll did not record last-seen: %+v, %v", ch, err)
	}
	m.start()
}

// BenchmarkEnqueue: the admin API enqueues one command for one device
// without a push (key check, JSON, catalogue validation, durable insert).
func BenchmarkEnqueue(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := w.e.Server.Handler()
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		serve(b, h, enqueueRequest(w, d.MDM.EnrollmentID))
	}
}

// BenchmarkResult: the device's signed Acknowledged result of a command it
// fetched: the result and the inventory it carries stored durably, the
// next command looked up. Enqueueing and fetching are outside the timer.
func BenchmarkResult(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := w.e.Server.Handler()
	idle := d.signed(b, map[string]any{"Status": "Idle"})
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		m.stop()
		id := commandUUID(b, serve(b, h, enqueueRequest(w, d.MDM.EnrollmentID)))
		if rec := serve(b, h, idle()); !bytes.Contains(rec.Body.Bytes(), []byte(id)) {
			b.Fatalf("the poll did not fetch %s", id)
		}
		ack := d.acknowledged(b, id)()
		m.start()
		if rec := serve(b, h, ack); rec.Body.Len() != 0 {
			b.Fatalf("result answered a command: %s", rec.Body)
		}
	}
}

// BenchmarkRoundTrip: one command's whole server side — the API enqueue
// without a push, the signed Idle that fetches it, the signed Acknowledged
// result (durable before the device is answered). Signing the answer is
// the device's work and outside the timer.
func BenchmarkRoundTrip(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := w.e.Server.Handler()
	idle := d.signed(b, map[string]any{"Status": "Idle"})
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		id := commandUUID(b, serve(b, h, enqueueRequest(w, d.MDM.EnrollmentID)))
		if rec := serve(b, h, idle()); !bytes.Contains(rec.Body.Bytes(), []byte(id)) {
			b.Fatalf("the poll did not fetch %s", id)
		}
		m.stop()
		ack := d.acknowledged(b, id)()
		m.start()
		serve(b, h, ack)
	}
}
