package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	_ "modernc.org/sqlite"
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
	s, _, path, install, list := profileWave(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
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
		ack, uuid := install()
		w0 := wal()
		_, _, err := s.RecordResultNext(ctx, "e1", "CH-1", uuid, "Acknowledged", []byte("<plist/>"), now, nil, ack)
		must(err)
		w1 := wal()
		_, _, err = s.RecordResultNext(ctx, "e1", "CH-1", "list-"+uuid, "Acknowledged", []byte("<plist/>"), now, nil, list())
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
