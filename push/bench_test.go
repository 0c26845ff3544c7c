package push

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
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

// childEnv makes the test binary a stand-in process (TestStandInChild).
const childEnv = "POMONA_PUSH_BENCH_STANDIN"

// TestStandInChild is not a test: run with childEnv set (by
// BenchmarkSendAll) it serves a stand-in, prints its URL and CA (base64
// DER) on one line and exits when its stdin closes.
func TestStandInChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only the stand-in process of BenchmarkSendAll")
	}
	stub, err := apnsstub.Start()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("STANDIN %s %s\n", stub.URL, base64.StdEncoding.EncodeToString(stub.CA.Cert.Raw))
	bufio.NewReader(os.Stdin).ReadString('\n')
	stub.Close()
}

// remoteStandIn starts the stand-in in a child process so that the
// process CPU measured here is the client's alone.
func remoteStandIn(b *testing.B) (url string, pool *x509.CertPool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStandInChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "STANDIN" {
			der, _ := base64.StdEncoding.DecodeString(f[2])
			ca, err := x509.ParseCertificate(der)
			if err != nil {
				b.Fatal(err)
			}
			pool = x509.NewCertPool()
			pool.AddCert(ca)
			go func() {
				for sc.Scan() {
				}
			}()
			return f[1], pool
		}
	}
	b.Fatal("the stand-in process did not start")
	return "", nil
}

// ecdsaPushCert is a push certificate with an ECDSA key (quick to make,
// unlike pushcert.NewLocal's RSA key, whose variable cost would hide a
// push's in instruction counts).
func ecdsaPushCert(b *testing.B) *pushcert.Cert {
	ca, err := pki.NewCA("push", pki.ECDSAP256, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: pki.NewSerial(),
		Subject: pkix.Name{CommonName: "APSP:bench",
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, Value: topic}}},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	return &pushcert.Cert{Cert: cert, Key: key, Topic: topic}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSendAll measures a fan-out of 1,000 pushes (32-byte tokens, all
// different, as in a profile assignment) to the stand-in running in
// another process, over TLS and HTTP/2: cpu-µs/push is this process's
// CPU (user+system, getrusage) per push, not wall time.
func BenchmarkSendAll(b *testing.B) {
	const n = 1000
	url, pool := remoteStandIn(b)
	c, err := New(ecdsaPushCert(b), url, pool)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ts := make([]Target, n)
	for i := range ts {
		tok := make([]byte, 32)
		binary.BigEndian.PutUint64(tok, uint64(i)+1)
		copy(tok[8:], "benchmark-token-benchmark-token")
		ts[i] = Target{ID: fmt.Sprint(i), Token: tok, PushMagic: "E2B7F4A0-4C33-4B8E-9F1A-6D7C0B1E2F3A"}
	}
	ctx := context.Background()
	for _, r := range c.SendAll(ctx, ts) { // the connection, warm
		if !r.OK() {
			b.Fatal(r)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		for _, r := range c.SendAll(ctx, ts) {
			if !r.OK() {
				b.Fatal(r)
			}
		}
	}
	cpu = cpuTime() - cpu
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/push")
}
