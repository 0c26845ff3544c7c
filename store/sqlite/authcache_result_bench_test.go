package sqlite

import (
	"context"
	"testing"
)

// BenchmarkSenderResult: the store read of a command result by the same
// device (DeviceRequestQuery.NoWaiting: remembered, one statement on
// auth_generation alone). Before Session 14 a result read what
// BenchmarkSenderIdlePoll reads.
func BenchmarkSenderResult(b *testing.B) {
	s, q := benchSender(b)
	q.NoWaiting = true
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.DeviceRequest(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
