package pushcert

import (
	"context"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// memSecrets is a store's secrets table shared by two instances.
type memSecrets map[string][]byte

func (m memSecrets) PutSecret(_ context.Context, name string, v []byte) error {
	m[name] = append([]byte(nil), v...)
	return nil
}

func (m memSecrets) Secret(_ context.Context, name string) ([]byte, error) {
	v, ok := m[name]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

// countingSealer seals with a per-call prefix (so equal plaintexts give
// different bytes, as AES-GCM's nonce does) and counts the unsealings.
type countingSealer struct{ seals, opens int }

func (s *countingSealer) Seal(p []byte, _ string) []byte {
	s.seals++
	return append([]byte{byte(s.seals)}, p...)
}

func (s *countingSealer) Open(b []byte, _ string) ([]byte, error) {
	s.opens++
	return b[1:], nil
}

// One instance's Load parses the stored certificate once, and sees at
// its next Load a certificate another instance saved.
func TestStoredLoadParsesOnceAndFollowsOtherInstances(t *testing.T) {
	ctx := context.Background()
	ca, _ := pki.NewCA("push test", pki.ECDSAP256, time.Now())
	first, err := NewLocal("com.apple.mgmt.External.0f1e2d3c-aaaa-bbbb-cccc-000000000001", ca, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewLocal("com.apple.mgmt.External.0f1e2d3c-aaaa-bbbb-cccc-000000000002", ca, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	secrets, sealer := memSecrets{}, &countingSealer{}
	a := &Stored{Secrets: secrets, Sealer: sealer}
	b := &Stored{Secrets: secrets, Sealer: sealer}
	if _, err := b.Load(ctx); err != ErrNone {
		t.Fatalf("nothing imported: %v", err)
	}
	if err := a.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	c1, err := b.Load(ctx)
	if err != nil || c1.Topic != first.Topic {
		t.Fatalf("first load: %+v %v", c1, err)
	}
	c2, err := b.Load(ctx)
	if err != nil || c2 != c1 || sealer.opens != 1 {
		t.Fatalf("second load of the same bytes: same cert %v, unsealed %d times (want 1), %v", c2 == c1, sealer.opens, err)
	}
	// Another instance imports a certificate: the next Load has it.
	if err := a.Save(ctx, second); err != nil {
		t.Fatal(err)
	}
	if c3, err := b.Load(ctx); err != nil || c3.Topic != second.Topic {
		t.Fatalf("after the other instance's import: %+v %v", c3, err)
	}
	// The same certificate saved again (new sealed bytes) is parsed anew.
	if err := a.Save(ctx, second); err != nil {
		t.Fatal(err)
	}
	opens := sealer.opens
	if c4, err := b.Load(ctx); err != nil || c4.Topic != second.Topic || sealer.opens != opens+1 {
		t.Fatalf("re-saved: %+v %v, unsealed %d → %d", c4, err, opens, sealer.opens)
	}
}

// BenchmarkPushCertLoad: what every push spends getting the certificate
// (RSA 2048, like Apple's): "parse" is the package's Load (unseal, PEM,
// certificate and key parsing: what each push did before session 8),
// "stored" is Stored.Load (the same read, parsed only when the bytes
// changed). The store read itself is an in-memory map here.
func BenchmarkPushCertLoad(b *testing.B) {
	ctx := context.Background()
	ca, _ := pki.NewCA("push test", pki.ECDSAP256, time.Now())
	c, err := NewLocal("com.apple.mgmt.External.0f1e2d3c-aaaa-bbbb-cccc-000000000001", ca, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	secrets, sealer := memSecrets{}, &countingSealer{}
	s := &Stored{Secrets: secrets, Sealer: sealer}
	if err := s.Save(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Load(ctx, secrets, sealer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stored", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := s.Load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
