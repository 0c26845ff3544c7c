package postgres

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// idleCommand is a command record for the idle-queue tests.
func idleCommand(uuid string) *store.CommandRecord {
	return &store.CommandRecord{UUID: uuid, RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: time.Now(), CreatedBy: "test"}
}

// A remembered sender's Idle poll on a channel whose queue the store saw
// empty sends no statement (it sent the queue look before migration
// 0033); an enqueue through the same store takes the very next poll (the
// store forgets at its commit, before the notice); delivering and
// answering the command make the channel read again until it is seen
// empty; without the listener every poll reads. Fails on the store
// before this change: every Idle poll sent one statement.
func TestIdleEmptyQueueStatements(t *testing.T) {
	ctx := context.Background()
	s, log, l := tracedListeningStore(t)
	q := enrolledDevice(t, s)
	poll := func(what string, want int, waiting bool) {
		t.Helper()
		log.Take()
		r, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got := log.Take(); len(got) != want {
			t.Errorf("%s sent %d statements, want %d:\n%s", what, len(got), want, strings.Join(got, "\n"))
		}
		if r.CommandWaiting != waiting {
			t.Errorf("%s: CommandWaiting %v, want %v", what, r.CommandWaiting, waiting)
		}
	}
	// The setup's notices may still arrive: each forgets.
	time.Sleep(100 * time.Millisecond)
	poll("the first Idle poll", 1, false)
	poll("an Idle poll of a queue seen empty", 0, false)
	poll("an Idle poll of a queue seen empty", 0, false)
	if err := s.Enqueue(ctx, idleCommand("cmd-1"), []string{"ch-ac"}); err != nil {
		t.Fatal(err)
	}
	// No wait for the notice: the store's own enqueue forgot the channel.
	poll("the Idle poll right after an enqueue through the store", 1, true)
	now := time.Now()
	if _, err := s.NextCommand(ctx, "e-ac", "ch-ac", true, now); err != nil {
		t.Fatal(err)
	}
	poll("an Idle poll with the command sent", 1, true)
	if _, _, err := s.RecordResultNext(ctx, "e-ac", "ch-ac", "cmd-1", "Acknowledged", []byte("<plist/>"), now, nil, nil); err != nil {
		t.Fatal(err)
	}
	poll("the Idle poll after the result", 1, false)
	poll("an Idle poll of a queue seen empty again", 0, false)
	l.stop()
	poll("an Idle poll without the listener", 1, false)
	poll("an Idle poll without the listener", 1, false)
}

// Two instances on one database, both listening: instance 1 saw the
// device's queue empty; a command enqueued through instance 2, by a
// bulk enqueue to two channels, or by a hand-written statement (any
// writer: migration 0033's triggers) is handed to instance 1's next Idle
// poll once the notice arrived, sent at the enqueue's commit. Marking a
// command sent and storing its result send no notice.
func TestIdleQueueTwoInstances(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s1, l1 := openListening(t, url)
	s2, _ := openListening(t, url)
	q := enrolledDevice(t, s1)
	now := time.Now().UTC()
	if err := s1.PutChannel(ctx, &store.Channel{ID: "ch-user", DeviceID: "e-ac", Kind: "user", EnrollmentUserID: "U1", PushMagic: "m",
		CreatedAt: now, UpdatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	uq := q
	uq.ChannelKind, uq.EnrollmentUserID = "user", "U1"
	waiting := func(s *sqlstore.Store, q store.DeviceRequestQuery) bool {
		t.Helper()
		r, err := s.DeviceRequest(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return r.CommandWaiting
	}
	// seeEmpty makes instance 1 remember both queues empty (the second
	// poll of each is answered from what it saw).
	seeEmpty := func() {
		t.Helper()
		time.Sleep(50 * time.Millisecond) // earlier notices arrive first
		for range 2 {
			if waiting(s1, q) || waiting(s1, uq) {
				t.Fatal("a command waiting before any was queued")
			}
		}
	}
	waitNotice := func(what string, seen int64) {
		t.Helper()
		waitFor(t, "instance 1's notice of "+what, func() bool { return l1.queueNotices.Load() > seen })
	}
	deliver := func(ch, uuid string) {
		t.Helper()
		c, err := s1.NextCommand(ctx, "e-ac", ch, true, time.Now())
		if err != nil || c.UUID != uuid {
			t.Fatalf("NextCommand on %s: %v, %+v; want %s", ch, err, c, uuid)
		}
		if _, _, err := s1.RecordResultNext(ctx, "e-ac", ch, uuid, "Acknowledged", []byte("<plist/>"), time.Now(), nil, nil); err != nil {
			t.Fatal(err)
		}
	}

	seeEmpty()
	seen := l1.queueNotices.Load()
	if err := s2.Enqueue(ctx, idleCommand("cmd-1"), []string{"ch-ac"}); err != nil {
		t.Fatal(err)
	}
	waitNotice("the enqueue", seen)
	if !waiting(s1, q) {
		t.Fatal("a command enqueued through instance 2: instance 1's Idle poll was told none waits")
	}
	if waiting(s1, uq) {
		t.Fatal("the user channel has no command")
	}
	deliver("ch-ac", "cmd-1")

	seeEmpty()
	seen = l1.queueNotices.Load()
	if err := s2.Enqueue(ctx, idleCommand("cmd-2"), []string{"ch-ac", "ch-user"}); err != nil {
		t.Fatal(err)
	}
	waitNotice("the bulk enqueue", seen)
	if !waiting(s1, q) || !waiting(s1, uq) {
		t.Fatal("a command enqueued to two channels through instance 2: instance 1's Idle polls were told none waits")
	}
	deliver("ch-ac", "cmd-2")
	deliver("ch-user", "cmd-2")

	// Written by hand: a stored result put back in the queue.
	seeEmpty()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen = l1.queueNotices.Load()
	if _, err := db.ExecContext(ctx, `UPDATE queue SET status = 'queued' WHERE channel_id = 'ch-user' AND command_uuid = 'cmd-2'`); err != nil {
		t.Fatal(err)
	}
	waitNotice("the hand-written write", seen)
	if !waiting(s1, uq) {
		t.Fatal("a command queued again by hand: instance 1's Idle poll was told none waits")
	}
	if waiting(s1, q) {
		t.Fatal("the device channel has no command")
	}

	// Marking sent and answering notify nobody: the one notice counted
	// after them is the marker's.
	seen = l1.queueNotices.Load()
	deliver("ch-user", "cmd-2")
	if _, err := db.ExecContext(ctx, `SELECT pg_notify('pomona_queue', 'marker')`); err != nil {
		t.Fatal(err)
	}
	waitNotice("the marker", seen)
	time.Sleep(50 * time.Millisecond)
	if n := l1.queueNotices.Load() - seen; n != 1 {
		t.Fatalf("%d notices for a delivery, its result and a marker; want 1", n)
	}
}
