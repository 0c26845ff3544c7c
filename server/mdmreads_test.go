package server_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/store"
)

// countingStore is the MDM channel's store (mdmservice.Store, nothing
// more, so no call goes uncounted) counting reads and writes.
type countingStore struct {
	s             store.Store
	mu            sync.Mutex
	reads, writes []string
}

func (c *countingStore) read(name string) {
	c.mu.Lock()
	c.reads = append(c.reads, name)
	c.mu.Unlock()
}

func (c *countingStore) write(name string) {
	c.mu.Lock()
	c.writes = append(c.writes, name)
	c.mu.Unlock()
}

func (c *countingStore) reset() (reads, writes []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reads, writes, c.reads, c.writes = c.reads, c.writes, nil, nil
	return reads, writes
}

func (c *countingStore) DeviceRequest(ctx context.Context, q store.DeviceRequestQuery) (*store.DeviceRequest, error) {
	if q.Idle {
		c.read("DeviceRequest(Idle)")
	} else {
		c.read("DeviceRequest")
	}
	return c.s.DeviceRequest(ctx, q)
}
func (c *countingStore) IdentityCert(ctx context.Context, serial string) (*store.IdentityCert, error) {
	c.read("IdentityCert")
	return c.s.IdentityCert(ctx, serial)
}
func (c *countingStore) Enrollment(ctx context.Context, id string) (*store.Enrollment, error) {
	c.read("Enrollment")
	return c.s.Enrollment(ctx, id)
}
func (c *countingStore) Tombstone(ctx context.Context, serial string) (*store.Tombstone, error) {
	c.read("Tombstone")
	return c.s.Tombstone(ctx, serial)
}
func (c *countingStore) User(ctx context.Context, id string) (*store.User, error) {
	c.read("User")
	return c.s.User(ctx, id)
}
func (c *countingStore) BindAccessToken(ctx context.Context, hash []byte, enrollmentID string) error {
	c.write("BindAccessToken")
	return c.s.BindAccessToken(ctx, hash, enrollmentID)
}
func (c *countingStore) BindAppleEnrollment(ctx context.Context, id, appleID string, info store.DeviceInfo, now time.Time) error {
	c.write("BindAppleEnrollment")
	return c.s.BindAppleEnrollment(ctx, id, appleID, info, now)
}
func (c *countingStore) PutChannel(ctx context.Context, ch *store.Channel) error {
	c.write("PutChannel")
	return c.s.PutChannel(ctx, ch)
}
func (c *countingStore) Channels(ctx context.Context, ref string) ([]store.Channel, error) {
	c.read("Channels")
	return c.s.Channels(ctx, ref)
}
func (c *countingStore) Channel(ctx context.Context, ref, kind, euid string) (*store.Channel, error) {
	c.read("Channel")
	return c.s.Channel(ctx, ref, kind, euid)
}
func (c *countingStore) TouchChannel(ctx context.Context, ref, id string, now time.Time) error {
	c.write("TouchChannel")
	return c.s.TouchChannel(ctx, ref, id, now)
}
func (c *countingStore) EndEnrollment(ctx context.Context, id, reason string, now time.Time) error {
	c.write("EndEnrollment")
	return c.s.EndEnrollment(ctx, id, reason, now)
}
func (c *countingStore) RecordResultNext(ctx context.Context, ref, ch, uuid, status string, raw []byte, now time.Time, inv store.InventoryFunc,
	ack *store.ProfileAck) (string, *store.QueuedCommand, error) {
	c.write("RecordResultNext")
	return c.s.RecordResultNext(ctx, ref, ch, uuid, status, raw, now, inv, ack)
}

func (c *countingStore) SetUndeliverable(ctx context.Context, ref, ch, uuid string, now time.Time) error {
	c.write("SetUndeliverable")
	return c.s.SetUndeliverable(ctx, ref, ch, uuid, now)
}

// NextCommand with nothing queued is a read (handing out a command would
// also mark it sent).
func (c *countingStore) NextCommand(ctx context.Context, ref, ch string, afterIdle bool, now time.Time) (*store.QueuedCommand, error) {
	c.read("NextCommand")
	return c.s.NextCommand(ctx, ref, ch, afterIdle, now)
}

// countingAuth counts auth's own reads (an access token and its user per
// Authorize); Check decides on rows already read.
type countingAuth struct {
	a *auth.Service
	c *countingStore
}

func (a countingAuth) Authorize(ctx context.Context, tenantID, header string) (*auth.Grant, error) {
	a.c.read("AccessToken")
	a.c.read("User")
	return a.a.Authorize(ctx, tenantID, header)
}
func (a countingAuth) AuthorizeStale(ctx context.Context, tenantID, header string) (*auth.Grant, error) {
	a.c.read("AccessToken")
	a.c.read("User")
	return a.a.AuthorizeStale(ctx, tenantID, header)
}
func (a countingAuth) Check(at *store.AccessToken, u *store.User, tenantID string, stale bool) (*auth.Grant, error) {
	return a.a.Check(at, u, tenantID, stale)
}

// TestIdleCheckinStoreRoundTrips: on a warm instance an idle poll (iOS,
// signed, with its bearer) with an empty queue costs one store read (of
// an Idle poll's columns only) and no write; a command queued since is still handed out by the next poll, and its
// result reads the same narrow columns; and
// a check-in carrying the push topic does not read the push certificate.
func TestIdleCheckinStoreRoundTrips(t *testing.T) {
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	srv := w.e.Server
	cs := &countingStore{s: srv.Store}
	topicLoads := 0
	topics := &mdmservice.TopicCache{Now: time.Now, Load: func(ctx context.Context) (string, error) {
		topicLoads++
		c, err := srv.PushCerts.Load(ctx)
		if err != nil {
			return "", err
		}
		return c.Topic, nil
	}}
	ch := mdmservice.New(mdmservice.Config{Store: cs, Auth: countingAuth{a: srv.Auth, c: cs}, CA: srv.CA.Cert, Topic: topics,
		Challenge: func(string) string { return "Bearer" }, Now: time.Now})
	sign := func(m map[string]any) *mdmservice.Request {
		m["EnrollmentID"] = d.MDM.EnrollmentID
		body, _ := plist.Marshal(m)
		sd, _ := pkcs7.NewSignedData(body)
		sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{})
		sd.Detach()
		sig, _ := sd.Finish()
		return &mdmservice.Request{Body: body, Signature: base64.StdEncoding.EncodeToString(sig), Authorization: "Bearer " + d.AccessToken}
	}
	ctx := context.Background()
	for i := range 3 {
		a, err := ch.Command(ctx, sign(map[string]any{"Status": "Idle"}))
		if err != nil || len(a.Body) != 0 {
			t.Fatalf("idle poll %d: %+v, %v", i, a, err)
		}
		reads, writes := cs.reset()
		if i == 0 {
			continue // warms the instance (the identity check's cache)
		}
		t.Logf("idle poll %d: reads %v, writes %v", i, reads, writes)
		if len(reads) != 1 || reads[0] != "DeviceRequest(Idle)" || len(writes) > 0 {
			t.Errorf("idle poll %d: %d store reads %v and %d writes %v; want 1 read (DeviceRequest's Idle columns) and no write",
				i, len(reads), reads, len(writes), writes)
		}
	}

	// The one read sees a command queued since: the next poll gets it.
	dr, err := srv.Store.DeviceRequest(ctx, store.DeviceRequestQuery{Serial: hex.EncodeToString(d.IdentityCert.SerialNumber.Bytes()), ChannelKind: "device"})
	if err != nil || dr.Channel == nil {
		t.Fatalf("device request: %+v, %v", dr, err)
	}
	cmd := &store.CommandRecord{UUID: "idle-reads-1", RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: time.Now()}
	if err := srv.Store.Enqueue(ctx, cmd, []string{dr.Channel.ID}); err != nil {
		t.Fatal(err)
	}
	if a, err := ch.Command(ctx, sign(map[string]any{"Status": "Idle"})); err != nil || string(a.Body) != "<plist/>" {
		t.Fatalf("idle poll after an enqueue: %+v, %v", a, err)
	}
	cs.reset()

	// Its result reads the sender with the same narrow columns (its hooks
	// and events need no more) and writes once.
	if a, err := ch.Command(ctx, sign(map[string]any{"Status": "Acknowledged", "CommandUUID": "idle-reads-1", "RequestType": "DeviceInformation",
		"QueryResponses": map[string]any{"OSVersion": "18.2"}})); err != nil || len(a.Body) != 0 || a.RequestType != "DeviceInformation" {
		t.Fatalf("result: %+v, %v", a, err)
	}
	if reads, writes := cs.reset(); len(reads) != 1 || reads[0] != "DeviceRequest(Idle)" || len(writes) != 1 || writes[0] != "RecordResultNext" {
		t.Errorf("a result: store reads %v and writes %v; want 1 read (DeviceRequest's Idle columns) and RecordResultNext", reads, writes)
	}

	// The push topic is read once, not on every check-in that carries it.
	topic := d.Profile.Topic
	for i := range 3 {
		if _, err := ch.Checkin(ctx, sign(map[string]any{"MessageType": "TokenUpdate", "Topic": topic, "Token": []byte{1, 2, 3}, "PushMagic": "magic"})); err != nil {
			t.Fatalf("TokenUpdate %d: %v", i, err)
		}
	}
	if topicLoads != 1 {
		t.Errorf("the push topic was loaded %d times for 3 check-ins, want 1", topicLoads)
	}
	cs.reset()
}
