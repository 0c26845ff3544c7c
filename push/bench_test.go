package push

import (
	"context"
	"testing"
)

// BenchmarkSend measures one push over a reused HTTP/2 connection to the
// local stand-in.
func BenchmarkSend(b *testing.B) {
	_, c := setup(b)
	ctx := context.Background()
	tgt := Target{Token: []byte{1, 2, 3, 4}, PushMagic: "m"}
	c.Send(ctx, tgt)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := c.Send(ctx, tgt); !r.OK() {
			b.Fatal(r)
		}
	}
}
