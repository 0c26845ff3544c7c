package untrusted

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Session 10, lane attack: the pooled node arrays of a BER walk (nodePool)
// under concurrency. Walks at once — real CMS, dense hostile input that
// grows the array past the pool's bound, inputs refused halfway, trailing
// bytes — each get their own nodes: every output is what the same input
// gives alone, however the pool's arrays move between goroutines (run
// with -race).
func TestPooledNodesConcurrentWalks(t *testing.T) {
	real, err := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		t.Fatal(err)
	}
	// A SEQUENCE of n empty OCTET STRINGs in indefinite-length form (BER
	// only): 2 bytes a node, so n nodes where the walk sized n/4.
	dense := func(n int) []byte {
		b := []byte{0x30, 0x80}
		for range n {
			b = append(b, 0x04, 0x00)
		}
		return append(b, 0x00, 0x00)
	}
	inputs := [][]byte{
		real,
		dense(10),
		dense(600),                            // grows past the sized array, stays poolable
		dense(3000),                           // grows past maxPooledNodes: not pooled
		dense(8000),                           // larger than smallASN1: sized for the worst case
		append(bytes.Clone(real), 0),          // trailing byte: refused after the walk
		real[:len(real)/2],                    // truncated: refused halfway
		append(dense(700)[:1400], 0x04, 0x85), // a bad length deep inside
	}
	type want struct {
		der []byte
		err string
	}
	wants := make([]want, len(inputs))
	for i, in := range inputs {
		der, err := ToDER(in, DefaultASN1)
		wants[i] = want{der, fmt.Sprint(err)}
	}
	if wants[0].der == nil || wants[3].der == nil || wants[5].der != nil || wants[6].der != nil {
		t.Fatalf("inputs not as meant: %v %v %v %v", wants[0].err, wants[3].err, wants[5].err, wants[6].err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 300 {
				i := (g + k) % len(inputs)
				var der []byte
				var err error
				if k%3 == 0 {
					err = CheckBER(inputs[i], DefaultASN1)
					if (err == nil) != (wants[i].der != nil) {
						errs <- fmt.Errorf("CheckBER of input %d: %v, alone %s", i, err, wants[i].err)
						return
					}
					continue
				}
				der, err = ToDER(inputs[i], DefaultASN1)
				if !bytes.Equal(der, wants[i].der) || fmt.Sprint(err) != wants[i].err {
					errs <- fmt.Errorf("ToDER of input %d at once with others differs from alone: %v vs %s", i, err, wants[i].err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
