package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// bigResult is a result of about mdm.MaxResult bytes with as many elements
// as the result decoder accepts: the most work one stored result can ask
// of a view that decodes it.
func bigResult(uuid string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>` +
		uuid + `</string><key>EnrollmentID</key><string>x</string><key>InstalledApplicationList</key><array>`)
	elem := `<string>` + strings.Repeat("a", 2) + `</string>`
	for b.Len()+len(elem)+64 < mdm.MaxResult && b.Len() < (mdm.ResultPlist.MaxElements-16)*len(elem) {
		b.WriteString(elem)
	}
	b.WriteString(`</array></dict></plist>`)
	return b.Bytes()
}

// BenchmarkDeviceCommandsWorstCase is one GET /api/v1/devices/{id}/commands
// of a device whose 200 latest commands (the view's page) each hold a
// stored result of ~8 MB (mdm.MaxResult) and the decoder's most elements:
// the time, the bytes allocated in the process (server and client) and
// the body's size per request. POMONA_BENCH_VIEW_COMMANDS changes the 200.
func BenchmarkDeviceCommandsWorstCase(b *testing.B) {
	n := 200
	if s := os.Getenv("POMONA_BENCH_VIEW_COMMANDS"); s != "" {
		fmt.Sscan(s, &n)
	}
	w := newWorld(b, true)
	e := w.e
	ctx := b.Context()
	d := enrolledDevice(b, w, "iPhone", "alice@example.com", "alice-password")
	st := e.Server.Store
	enr, err := st.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
	if err != nil {
		b.Fatal(err)
	}
	ch, err := st.Channel(ctx, enr.ID, "device", "")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range n {
		uuid := fmt.Sprint("BIG-", i)
		if err := st.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "InstalledApplicationList", Payload: []byte("p"), CreatedAt: now}, []string{ch.ID}); err != nil {
			b.Fatal(err)
		}
		if _, err := st.RecordResult(ctx, enr.ID, ch.ID, uuid, mdm.Acknowledged, bigResult(uuid), now, nil); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var body int64
	client := *e.Client
	client.Timeout = 0 // the worst case took longer than the API client's 30 s
	start := time.Now()
	for b.Loop() {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil)
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MB-alloc/op")
	b.ReportMetric(float64(body)/(1<<20), "MB-body")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/op")
}
