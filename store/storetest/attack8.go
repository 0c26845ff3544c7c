package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// Session 8, lane attack: device results racing each other (a replayed
// result, two instances answering one channel, an enqueue beside them).
// On PostgreSQL a result's transaction runs REPEATABLE READ and reads and
// marks the next command inside it; these cases hold whatever the
// isolation, as long as no acknowledged result can be overwritten and no
// answered command handed out again. Each would fail at READ COMMITTED
// (an UPDATE re-evaluated on the new row version instead of a
// serialization failure): the second writer of one queue row overwrites
// the first and both are told they won.

func attack8Tests() []namedTest {
	return []namedTest{
		{"ContradictingResultsRace", testContradictingResultsRace},
		{"ConcurrentHandOutAndAnswers", testConcurrentHandOutAndAnswers},
		{"ReplayedInstallAckRace", testReplayedInstallAckRace},
		{"FailProfileItemOnce", testFailProfileItemOnce},
	}
}

// queueRow is channel ch's queue row of command uuid.
func queueRow(t *testing.T, s store.Store, ch, uuid string) store.QueuedCommand {
	t.Helper()
	qs, err := s.QueuedCommands(context.Background(), ch, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.UUID == uuid {
			return q
		}
	}
	t.Fatalf("%s is not in channel %s's queue", uuid, ch)
	return store.QueuedCommand{}
}

// testContradictingResultsRace: one sent command answered at once
// Acknowledged by some requests and Error by others (a device's replay
// beside a second instance's copy). Exactly one answer stands; every call
// told nil answered it that way (an acknowledged result the device was
// told is recorded is never overwritten); every other call is
// ErrConflict; the stored result is the bytes of a call that won.
func testContradictingResultsRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, e, _, chans, t0 := twoDevicesOfAlice(t, s)
	ch := chans[e.ID]
	const commands, each = 6, 4
	for c := 0; c < commands; c++ {
		cmd := &store.CommandRecord{UUID: id("RR"), RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "test"}
		if err := s.Enqueue(ctx, cmd, []string{ch}); err != nil {
			t.Fatal(err)
		}
		if q, err := s.NextCommand(ctx, e.ID, ch, true, t0); err != nil || q.UUID != cmd.UUID {
			t.Fatalf("next: %+v %v", q, err)
		}
		type outcome struct {
			status string
			body   []byte
			err    error
		}
		start := make(chan struct{})
		out := make(chan outcome, 2*each)
		for i := 0; i < 2*each; i++ {
			status := mdm.Acknowledged
			if i%2 == 1 {
				status = mdm.Error
			}
			body := []byte(fmt.Sprintf("<plist><dict><key>n</key><integer>%d</integer></dict></plist>", i))
			go func() {
				<-start
				_, q, err := s.RecordResultNext(ctx, e.ID, ch, cmd.UUID, status, body, t0, nil, nil)
				if err == nil && q != nil && q.UUID == cmd.UUID {
					err = fmt.Errorf("the answered command %s was handed out again with its own answer", cmd.UUID)
				}
				out <- outcome{status, body, err}
			}()
		}
		close(start)
		var won []outcome
		for i := 0; i < 2*each; i++ {
			o := <-out
			switch {
			case o.err == nil:
				won = append(won, o)
			case errors.Is(o.err, store.ErrConflict):
			default:
				t.Fatalf("command %d, %s: %v", c, o.status, o.err)
			}
		}
		row := queueRow(t, s, ch, cmd.UUID)
		if len(won) == 0 {
			t.Fatalf("command %d: no call won; stored %s", c, row.Status)
		}
		fromWinner := false
		for _, o := range won {
			if o.status != row.Status {
				t.Fatalf("command %d: a call answering %s was told it was recorded, but the queue says %s (a lost result)", c, o.status, row.Status)
			}
			fromWinner = fromWinner || bytes.Equal(o.body, row.Result)
		}
		if !fromWinner {
			t.Fatalf("command %d: stored result %q is no winner's", c, row.Result)
		}
	}
}

// testConcurrentHandOutAndAnswers: workers poll one channel at once (Idle
// polls and results with the next command, as two instances serving one
// device's replays would) while commands are enqueued beside them. Every
// command is handed out and ends Acknowledged, and no call that began
// after a command's result was recorded hands that command out again.
func testConcurrentHandOutAndAnswers(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, _, e, _, chans, t0 := twoDevicesOfAlice(t, s)
	ch := chans[e.ID]
	const first, later, workers = 12, 8, 6
	var all []string
	enqueue := func(n int) []string {
		var ids []string
		for i := 0; i < n; i++ {
			cmd := &store.CommandRecord{UUID: id("HO"), RequestType: "DeviceInformation", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "test"}
			if err := s.Enqueue(ctx, cmd, []string{ch}); err != nil {
				t.Error(err)
				return ids
			}
			ids = append(ids, cmd.UUID)
		}
		return ids
	}
	all = enqueue(first)

	var tick atomic.Int64
	var mu sync.Mutex
	answered := map[string]int64{} // command → tick after its result was recorded
	var bad []string
	handed := func(q *store.QueuedCommand, began int64) {
		if q == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if at, ok := answered[q.UUID]; ok && at < began {
			bad = append(bad, fmt.Sprintf("%s handed out again after its result was recorded", q.UUID))
		}
	}
	var enqueuing atomic.Bool
	enqueuing.Store(true)
	laterIDs := make(chan []string, 1)
	go func() {
		defer enqueuing.Store(false)
		laterIDs <- enqueue(later)
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for polls := 0; polls < 10_000; polls++ {
				stillEnqueuing := enqueuing.Load()
				began := tick.Add(1)
				q, err := s.NextCommand(ctx, e.ID, ch, true, t0)
				if errors.Is(err, store.ErrNotFound) {
					if !stillEnqueuing {
						errs <- nil
						return
					}
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				handed(q, began)
				for q != nil {
					began := tick.Add(1)
					_, next, err := s.RecordResultNext(ctx, e.ID, ch, q.UUID, mdm.Acknowledged, []byte("<plist/>"), t0, nil, nil)
					if err != nil {
						errs <- fmt.Errorf("result of %s: %w", q.UUID, err)
						return
					}
					mu.Lock()
					if _, ok := answered[q.UUID]; !ok {
						answered[q.UUID] = tick.Add(1)
					}
					mu.Unlock()
					handed(next, began)
					q = next
				}
			}
			errs <- errors.New("a worker polled 10,000 times without draining the queue")
		}()
	}
	wg.Wait()
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	all = append(all, <-laterIDs...)
	if len(bad) > 0 {
		t.Fatalf("double delivery: %v", bad)
	}
	for _, uuid := range all {
		if row := queueRow(t, s, ch, uuid); row.Status != mdm.Acknowledged {
			t.Errorf("command %s ends %s, want Acknowledged", uuid, row.Status)
		}
	}
}

// testReplayedInstallAckRace: a device's acknowledgement of an install
// arrives several times at once (a replay, two instances). The item is
// acknowledged once, exactly one verifying ProfileList is queued (a second
// would be a second verification round trip per replay), and every call
// is told the result is recorded.
func testReplayedInstallAckRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn, _, e, _, chans, t0 := twoDevicesOfAlice(t, s)
	ch := chans[e.ID]
	p := mustProfile(t, s, tn.ID, "com.example.replayed")
	install := &store.CommandRecord{UUID: id("I"), RequestType: "InstallProfile", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
	if err := s.Enqueue(ctx, install, []string{ch}); err != nil {
		t.Fatal(err)
	}
	if q, err := s.NextCommand(ctx, e.ID, ch, true, t0); err != nil || q.UUID != install.UUID {
		t.Fatalf("next: %+v %v", q, err)
	}
	if err := s.PutProfileItem(ctx, &store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing",
		Version: 1, Hash: "h", CommandUUID: install.UUID, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	const replays = 6
	start := make(chan struct{})
	errs := make(chan error, replays)
	for i := 0; i < replays; i++ {
		go func() {
			ack := &store.ProfileAck{Verify: func() *store.CommandRecord {
				return &store.CommandRecord{UUID: id("V"), RequestType: "ProfileList", Payload: []byte("<plist/>"), CreatedAt: t0, CreatedBy: "profiles"}
			}}
			<-start
			_, _, err := s.RecordResultNext(ctx, e.ID, ch, install.UUID, mdm.Acknowledged, []byte("ok"), t0, nil, ack)
			errs <- err
		}()
	}
	close(start)
	for i := 0; i < replays; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	its, err := s.ProfileItems(ctx, e.ID)
	if err != nil || len(its) != 1 || !its[0].Acknowledged || its[0].CommandUUID != install.UUID {
		t.Fatalf("item after the replays: %+v %v", its, err)
	}
	qs, err := s.QueuedCommands(ctx, ch, 100)
	if err != nil {
		t.Fatal(err)
	}
	lists := 0
	for _, q := range qs {
		if q.RequestType == "ProfileList" {
			lists++
		}
	}
	if lists != 1 {
		t.Fatalf("%d ProfileLists queued by %d copies of one acknowledgement, want 1: %+v", lists, replays, qs)
	}
	if row := queueRow(t, s, ch, install.UUID); row.Status != mdm.Acknowledged || string(row.Result) != "ok" {
		t.Fatalf("install row: %+v", row)
	}
}

// testFailProfileItemOnce: FailProfileItemForCommand records a failure
// only while the item carries the command and is not failed yet; of
// copies of one answer failing it at once exactly one writes.
func testFailProfileItemOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	tn, _, e, _, _, t0 := twoDevicesOfAlice(t, s)
	p := mustProfile(t, s, tn.ID, "com.example.failonce")
	cur := store.ProfileItem{DeviceID: e.ID, ProfileID: p.ID, Identifier: p.Identifier, State: "installing", Version: 1, Hash: "h",
		CommandUUID: "F-1", Attempts: 1, UpdatedAt: t0}
	if err := s.PutProfileItem(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	failed := cur
	failed.State, failed.Error, failed.NextRetry = "failed", "the device answered Error", t0.Add(time.Minute)
	other := failed
	if err := s.FailProfileItemForCommand(ctx, &other, "F-other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failing an item for another command: %v", err)
	}
	const copies = 6
	start := make(chan struct{})
	errs := make(chan error, copies)
	for i := 0; i < copies; i++ {
		it := failed
		it.Error = fmt.Sprintf("copy %d", i)
		go func() {
			<-start
			errs <- s.FailProfileItemForCommand(ctx, &it, "F-1")
		}()
	}
	close(start)
	wrote := 0
	for i := 0; i < copies; i++ {
		switch err := <-errs; {
		case err == nil:
			wrote++
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Fatal(err)
		}
	}
	if wrote != 1 {
		t.Fatalf("%d of %d copies recorded the failure, want 1", wrote, copies)
	}
	its, err := s.ProfileItems(ctx, e.ID)
	if err != nil || len(its) != 1 || its[0].State != "failed" || its[0].CommandUUID != "F-1" || !its[0].NextRetry.Equal(failed.NextRetry) {
		t.Fatalf("item: %+v %v", its, err)
	}
	// A new command (a retry) can fail again.
	retry := cur
	retry.CommandUUID, retry.Attempts = "F-2", 2
	if err := s.PutProfileItem(ctx, &retry); err != nil {
		t.Fatal(err)
	}
	again := retry
	again.State = "failed"
	if err := s.FailProfileItemForCommand(ctx, &again, "F-2"); err != nil {
		t.Fatalf("the retry's failure: %v", err)
	}
}
