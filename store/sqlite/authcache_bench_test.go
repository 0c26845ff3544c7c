package sqlite

import (
	"context"
	"testing"

	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

// benchSender opens a store with one enrolled device and returns its
// command-channel query (Idle).
func benchSender(b *testing.B) (*sqlstore.Store, store.DeviceRequestQuery) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/pomona.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, storetest.EnrolledSender(b, s, "b")
}

// BenchmarkSenderIdlePoll: the store read of an Idle poll by the same
// device, over and over (Session 14, identcache6: remembered after the
// first, one statement on auth_generation and the channel's queue).
func BenchmarkSenderIdlePoll(b *testing.B) {
	s, q := benchSender(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.DeviceRequest(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
