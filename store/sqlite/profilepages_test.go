package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	_ "modernc.org/sqlite"
	"os"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// TestProfileAnswerPages counts the pages a profile wave's two answers
// write to the WAL (each commit appends every page it changed: two
// pwrites per page before the fsync). An acknowledged install writes 7
// (the ProfileList's command and queue rows with their indexes, the
// install's queue row and its two status indexes, the item); the
// ProfileList's answer 6: its queue row and status indexes, the item and
// its two state indexes. Before Session 13 the answer rewrote the item's
// command_uuid index entry with the same key (putItemSQL sets every
// column): 7.
func TestProfileAnswerPages(t *testing.T) {
	ctx := context.Background()
	s, _, path := countedStoreAt(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateTenant(ctx, &store.Tenant{ID: "t1", Name: "T", Domains: []string{"t.example"}, CreatedAt: now, UpdatedAt: now}))
	must(s.CreateUser(ctx, &store.User{ID: "u1", TenantID: "t1", Email: "a@t.example", ManagedAppleID: "a@t.example", Name: "A", Enabled: true, CreatedAt: now, UpdatedAt: now}))
	must(s.CreateEnrollment(ctx, &store.Enrollment{ID: "e1", TenantID: "t1", UserID: "u1", TokenHash: []byte("tok"), Platform: "iOS", Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}, nil))
	must(s.PutChannel(ctx, &store.Channel{ID: "CH-1", DeviceID: "e1", Kind: "device", CreatedAt: now, UpdatedAt: now}))
	p := &store.ConfigProfile{ID: "p1", TenantID: "t1", Identifier: "com.example.p1", Name: "p1", Platforms: []string{"iOS"}, PayloadTypes: []string{"com.apple.wifi.managed"}, CreatedAt: now, UpdatedAt: now}
	must(s.CreateProfile(ctx, p, &store.ProfileVersion{Plist: []byte("<plist/>"), Hash: "h1", CreatedAt: now}))
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	must(err)
	defer raw.Close()
	wal := func() int64 {
		fi, err := os.Stat(path + "-wal")
		must(err)
		return fi.Size()
	}
	const frame = 24 + 4096 // the WAL's frame header and a page
	for n := 1; n <= 3; n++ {
		uuid := fmt.Sprintf("i%d", n)
		must(s.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: now}, []string{"CH-1"}))
		must(s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: "e1", ProfileID: "p1", Identifier: "com.example.p1", State: "installing", Version: 1, Hash: "h1", CommandUUID: uuid, UpdatedAt: now}))
		s.NextCommand(ctx, "e1", "CH-1", true, now)
		w0 := wal()
		ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
			return &store.CommandRecord{UUID: "list-" + uuid, RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: now, CreatedBy: "profiles"}
		}}
		_, _, err := s.RecordResultNext(ctx, "e1", "CH-1", uuid, "Acknowledged", []byte("<plist/>"), now, nil, ack)
		must(err)
		w1 := wal()
		l := &store.ProfileAck{List: func(items []store.ProfileItem) ([]store.ProfileItem, []string) {
			for i := range items {
				items[i].State = "installed"
			}
			return items, nil
		}}
		_, _, err = s.RecordResultNext(ctx, "e1", "CH-1", "list-"+uuid, "Acknowledged", []byte("<plist/>"), now, nil, l)
		must(err)
		w2 := wal()
		b, _ := os.ReadFile(path + "-wal")
		pages := func(a, z int64) (out []string) {
			for off := a; off < z; off += frame {
				pg := binary.BigEndian.Uint32(b[off : off+4])
				var name string
				raw.QueryRow("SELECT name FROM dbstat WHERE pageno = ?", pg).Scan(&name)
				out = append(out, fmt.Sprint(pg, ":", name))
			}
			return
		}
		if n == 1 {
			continue // the first wave's pages are new to the WAL
		}
		if got := pages(w0, w1); len(got) != 7 {
			t.Errorf("an acknowledged install wrote %d pages, want 7: %v", len(got), got)
		}
		if got := pages(w1, w2); len(got) != 6 {
			t.Errorf("the ProfileList's answer wrote %d pages, want 6: %v", len(got), got)
		}
	}
}
