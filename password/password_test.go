package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHashVerify(t *testing.T) {
	for _, p := range []Params{Fast, Default} {
		h, err := Hash("correct horse", p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$") {
			t.Fatalf("hash %q", h)
		}
		if err := Verify("correct horse", h); err != nil {
			t.Fatalf("Verify right password: %v", err)
		}
		if err := Verify("correct horsE", h); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify wrong password: %v", err)
		}
		got, _ := ParamsOf(h)
		if got != p {
			t.Fatalf("recorded params %+v, want %+v", got, p)
		}
	}
	a, _ := Hash("same", Fast)
	b, _ := Hash("same", Fast)
	if a == b {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestNeedsRehash(t *testing.T) {
	weak, _ := Hash("pw", Fast)
	if !NeedsRehash(weak, Default) {
		t.Fatal("weak hash not flagged")
	}
	strong, _ := Hash("pw", Default)
	if NeedsRehash(strong, Default) {
		t.Fatal("default hash flagged")
	}
	if !NeedsRehash("garbage", Default) {
		t.Fatal("garbage not flagged")
	}
}

func TestMalformed(t *testing.T) {
	for _, h := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 95 GiB
		"$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
	} {
		if err := Verify("pw", h); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, want ErrMalformed", h, err)
		}
	}
	if _, err := Hash(strings.Repeat("x", MaxLength+1), Fast); err == nil {
		t.Fatal("over-long password hashed")
	}
}

func BenchmarkHashDefault(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Hash("correct horse battery staple", Default)
	}
}

// TestConcurrentHashesBounded: however many hashes and checks are asked for
// at once (one per sign-in attempt, from anyone), at most cap(slots) run
// together, so memory stays at cap(slots) × Memory.
func TestConcurrentHashesBounded(t *testing.T) {
	var running, peak atomic.Int32
	old := idKey
	idKey = func(pw, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) []byte {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer running.Add(-1)
		time.Sleep(2 * time.Millisecond) // a real hash takes ~50 ms: let them overlap
		return old(pw, salt, passes, memory, threads, keyLen)
	}
	defer func() { idKey = old }()
	h, err := Hash("right", Fast)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				Verify("wrong", h)
			} else {
				Hash("x", Fast)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > int32(cap(slots)) || p < 1 {
		t.Fatalf("%d argon2id computations at once, want 1..%d", p, cap(slots))
	}
}

// TestVerifyGivesUpWhenClientLeaves: a check waiting for a slot (all of
// them busy) returns its context's error as soon as the sign-in's client
// has gone, without computing; the old code waited for a slot and then
// computed a key nobody would read (a flood of hung-up attempts kept the
// slots busy ahead of later clients). With a slot free again, the same
// check runs.
func TestVerifyGivesUpWhenClientLeaves(t *testing.T) {
	h, err := Hash("right", Fast)
	if err != nil {
		t.Fatal(err)
	}
	var computed atomic.Int32
	old := idKey
	idKey = func(pw, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) []byte {
		computed.Add(1)
		return old(pw, salt, passes, memory, threads, keyLen)
	}
	defer func() { idKey = old }()
	for range cap(slots) { // every slot busy
		slots <- struct{}{}
	}
	freed := false
	free := func() {
		if !freed {
			freed = true
			for range cap(slots) {
				<-slots
			}
		}
	}
	defer free()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- VerifyContext(ctx, "right", h) }()
	time.Sleep(20 * time.Millisecond)
	cancel() // the client disconnects
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("VerifyContext after the client left: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		free()
		<-done
		t.Fatal("VerifyContext kept waiting for a slot after its client left")
	}
	if n := computed.Load(); n != 0 {
		t.Fatalf("%d keys computed for a client that had left", n)
	}
	free()
	if err := VerifyContext(context.Background(), "right", h); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
	if err := VerifyContext(ctx, "right", h); !errors.Is(err, context.Canceled) {
		t.Fatalf("an ended context with a slot free: %v, want context.Canceled", err)
	}
}
