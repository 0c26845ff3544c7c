package profiles

import (
	"context"
	"testing"
	"time"
)

// Two instances on one PostgreSQL database reconcile a profile assigned
// to 60 devices whose marking is chunked (4 in the assignment's own
// transaction, the rest by the instances' claims, chunk by chunk, each
// instance expanding with its own connection): every device gets
// exactly one InstallProfile and nothing stays due.
func TestTwoInstancesChunkedMarkingPostgres(t *testing.T) {
	a, b := twoPostgresInstances(t)
	a.SetMarkChunk(4)
	b.SetMarkChunk(4)
	chs := fleet(t, a, 60)
	if n, _ := a.DirtyCount(context.Background(), time.Now()); n != 4 {
		t.Fatalf("%d devices marked by the assignment, want its first chunk of 4", n)
	}
	twoInstances(t, a, b, chs)
}

// The same on SQLite: two reconcilers on one store (one process).
func TestTwoReconcilersChunkedMarkingSQLite(t *testing.T) {
	s := emptyStore(t)
	s.SetMarkChunk(4)
	chs := fleet(t, s, 30)
	if n, _ := s.DirtyCount(context.Background(), time.Now()); n != 4 {
		t.Fatalf("%d devices marked by the assignment, want its first chunk of 4", n)
	}
	twoInstances(t, s, s, chs)
}

// Job.Drain over a chunked marking: the first pass's claim marks the
// next chunk before it claims, so it comes back full and starts the
// other workers; they expand and claim until the expansion has ended
// (a short claim means nothing is left to mark): one InstallProfile per
// device, nothing due.
func TestDrainChunkedMarking(t *testing.T) {
	s := emptyStore(t)
	s.SetMarkChunk(5)
	chs := fleet(t, s, 50)
	j := job(s, "A")
	j.Batch, j.Workers = 5, 3
	j.Drain(context.Background())
	installsOnce(t, s, chs, time.Now())
}
