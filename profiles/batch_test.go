package profiles

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// static has no per-device variable: every device gets the same bytes.
const static = `<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.static</string>
<key>PayloadUUID</key><string>8A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.static.payload</string>
	<key>PayloadUUID</key><string>9A0B0C5E-1111-4222-8333-444455556666</string>
	<key>SSID_STR</key><string>Guest</string>
</dict></array></dict></plist>`

// perUser uses $MANAGED_APPLE_ID, which one user of the test lacks.
var perUser = strings.NewReplacer("com.example.wifi", "com.example.mail", "$EMAIL", "$MANAGED_APPLE_ID",
	"6A0B0C5E", "1A0B0C5E", "7A0B0C5E", "2A0B0C5E").Replace(wifi)

// A batch with mixed outcomes: the device whose user has no Managed
// Apple ID fails that one profile alone; everything else of the batch is
// queued in the same pass; the profile without variables is one command
// shared by every device, the per-user one a shared template rendered per
// device at delivery (each queue row with its device's value); a result
// of the shared command moves only the answering device's item.
func TestBatchMixedOutcomes(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	st, tn := testStore(t, now)
	const n, blank = 9, 4
	enrs := make([]*store.Enrollment, n)
	for i := 0; i < n; i++ {
		mid := fmt.Sprintf("u%d@appleid.example.com", i)
		if i == blank {
			mid = ""
		}
		u := &store.User{ID: fmt.Sprint("us_", i), TenantID: tn.ID, Email: fmt.Sprintf("u%d@example.com", i), ManagedAppleID: mid, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		e := &store.Enrollment{ID: fmt.Sprint("en_", i), TenantID: tn.ID, UserID: u.ID, TokenHash: []byte{byte(i)}, Platform: "iOS", OSVersion: "18.2",
			Status: store.EnrollmentPending, CreatedAt: now, UpdatedAt: now}
		if err := st.CreateEnrollment(ctx, e, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.BindAppleEnrollment(ctx, e.ID, fmt.Sprint("APPLE-", i), store.DeviceInfo{OSVersion: "18.2"}, now); err != nil {
			t.Fatal(err)
		}
		if err := st.PutChannel(ctx, &store.Channel{ID: fmt.Sprint("ch_", i), DeviceID: e.ID, Kind: "device", PushToken: []byte("t"), CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		enrs[i], _ = st.Enrollment(ctx, e.ID)
	}
	svc := &app.Profiles{Store: st, Rules: payloads.Default(), Now: time.Now}
	all, err := st.AllUsersGroup(ctx, tn.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{static, perUser} {
		p, err := svc.Upload(ctx, app.ProfileUpload{TenantID: tn.ID, Content: []byte(c), Platforms: []string{"iOS"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Assign(ctx, p.ID, all.ID, false); err != nil {
			t.Fatal(err)
		}
	}
	j := job(st, "A")
	j.Batch = 50
	rep, err := j.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Claimed != n || rep.Installs != 2*n-1 || rep.Failures != 1 {
		t.Fatalf("report %+v", rep)
	}
	shared := map[string]int{}
	var blankFailed *store.ProfileItem
	for i, e := range enrs {
		items, err := st.ProfileItems(ctx, e.ID)
		if err != nil || len(items) != 2 {
			t.Fatalf("items of %s: %+v %v", e.ID, items, err)
		}
		for _, it := range items {
			switch {
			case it.Identifier == "com.example.static":
				if it.State != reconcile.Installing {
					t.Fatalf("static on %s: %+v", e.ID, it)
				}
				shared[it.CommandUUID]++
			case i == blank:
				if it.State != reconcile.Failed || !strings.Contains(it.Error, "MANAGED_APPLE_ID") || it.CommandUUID != "" {
					t.Fatalf("the device without a value: %+v", it)
				}
				blankFailed = &it
			default:
				if it.State != reconcile.Installing || it.CommandUUID == "" {
					t.Fatalf("per-user on %s: %+v", e.ID, it)
				}
				shared[it.CommandUUID]++
			}
		}
		qs, _ := st.QueuedCommands(ctx, fmt.Sprint("ch_", i), 10)
		if want := 2; i == blank && len(qs) != 1 || i != blank && len(qs) != want {
			t.Fatalf("queue of %s: %d commands", e.ID, len(qs))
		}
	}
	if blankFailed == nil {
		t.Fatal("no failed item")
	}
	// One shared command for the static profile (n devices), one shared
	// template for the per-user one (the n-1 devices with a value),
	// rendered per device at delivery.
	counts := map[int]int{}
	for _, c := range shared {
		counts[c]++
	}
	if counts[n] != 1 || counts[n-1] != 1 || len(shared) != 2 {
		t.Fatalf("commands by devices: %v", counts)
	}
	// Each device's queue row of the template holds its own value, and
	// the Deliverer's bytes are the ones its item's hash was computed on.
	dl := &Deliverer{}
	for i, e := range enrs {
		if i == blank {
			continue
		}
		qs, _ := st.QueuedCommands(ctx, fmt.Sprint("ch_", i), 10)
		items, _ := st.ProfileItems(ctx, e.ID)
		var tq *store.QueuedCommand
		for k := range qs {
			if qs[k].Render != store.RenderReady {
				if tq != nil {
					t.Fatalf("device %d: two template commands", i)
				}
				tq = &qs[k]
			} else if qs[k].Vars != "" || qs[k].RequestType != "InstallProfile" {
				t.Fatalf("device %d: the ready command %s %q", i, qs[k].RequestType, qs[k].Vars)
			}
		}
		mid := fmt.Sprintf("u%d@appleid.example.com", i)
		if tq == nil || tq.Render != store.RenderProfile || tq.Vars != `{"MANAGED_APPLE_ID":"`+mid+`"}` || !strings.Contains(string(tq.Payload), "$MANAGED_APPLE_ID") {
			t.Fatalf("device %d: template command %+v", i, tq)
		}
		body, err := dl.Render(ctx, tq)
		if err != nil {
			t.Fatal(err)
		}
		cmd, inner, payload := delivered(t, body)
		var hash string
		for _, it := range items {
			if it.Identifier == "com.example.mail" {
				hash = it.Hash
			}
		}
		if cmd["CommandUUID"] != tq.UUID || inner["RequestType"] != "InstallProfile" || !strings.Contains(string(payload), mid) ||
			strings.Contains(string(payload), "$MANAGED_APPLE_ID") || mobileconfig.Hash(payload) != hash {
			t.Fatalf("device %d: delivered %s (hash %s, item %s)", i, body, mobileconfig.Hash(payload), hash)
		}
	}
	// The shared command's result moves only the answering device's item.
	var staticCmd string
	for u, c := range shared {
		if c == n {
			staticCmd = u
		}
	}
	raw := []byte(`<plist version="1.0"><dict><key>CommandUUID</key><string>` + staticCmd + `</string><key>Status</key><string>Acknowledged</string><key>EnrollmentID</key><string>x</string></dict></plist>`)
	res, err := mdm.DecodeResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !j.Result(ctx, enrs[3], "ch_3", "InstallProfile", res) {
		t.Fatal("the acknowledged install queued no ProfileList")
	}
	for i, e := range enrs {
		it, err := st.ProfileItemForCommand(ctx, e.ID, staticCmd)
		if err != nil {
			t.Fatal(err)
		}
		if it.Acknowledged != (i == 3) {
			t.Fatalf("device %d acknowledged=%v", i, it.Acknowledged)
		}
	}
	// The acknowledged device's verification is queued on its channel at
	// once, behind its other install (newest first); nothing is due for
	// the reconciler (the failed device is not retried: no value, no
	// retry).
	q, err := st.QueuedCommands(ctx, "ch_3", 10)
	if err != nil || len(q) != 3 || q[0].RequestType != "ProfileList" || q[0].Status != store.QueueQueued || q[1].RequestType != "InstallProfile" {
		t.Fatalf("channel queue: %d commands, newest %q, %v", len(q), q[0].RequestType, err)
	}
	if n, _ := st.DirtyCount(ctx, time.Now()); n != 0 {
		t.Fatalf("%d due", n)
	}
	// A repeated answer queues nothing more.
	if j.Result(ctx, enrs[3], "ch_3", "InstallProfile", res) {
		t.Fatal("a repeated acknowledgement queued again")
	}
}
