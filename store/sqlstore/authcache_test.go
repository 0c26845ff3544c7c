package sqlstore

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/store"
)

// TestAuthCacheEntrySize measures what one remembered sender costs (the
// entry, its token, its key, the map's share, a channel's last-seen
// time) with strings of real lengths, each its own allocation as a
// scanned row's are, and holds it to the figure authCacheGeneration's
// bound is made of: 2 × 32,768 entries × this ≤ the documented ~50 MB.
func TestAuthCacheEntrySize(t *testing.T) {
	const n = 20_000
	c := &authCache{}
	str := func(prefix string, i, size int) string {
		s := fmt.Sprintf("%s%d", prefix, i)
		return s + strings.Repeat("x", size-len(s))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.mu.Lock()
	for i := range n {
		q := store.DeviceRequestQuery{Serial: str("s", i, 40), TokenHash: []byte(str("h", i, 32)), ChannelKind: "device"}
		e := &authEntry{gen: 1, deviceID: str("e", i, 36), tenantID: str("t", i%10, 36), userID: str("u", i, 36), platform: "iOS",
			status: store.EnrollmentEnrolled, appleID: str("A", i, 40), revoked: 0, notBefore: 0, enabled: true,
			chID: str("c", i, 48), chSeen: 1}
		e.tok, e.tokUser, e.tokTenant, e.tokDevice = true, same(e.userID, str("u", i, 36)), same(e.tenantID, str("t", i%10, 36)), same(e.deviceID, str("e", i, 36))
		c.putLocked(authKey(q), e)
	}
	c.mu.Unlock()
	for i := range n {
		c.touched(str("c", i, 48), 2)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per remembered sender (%d entries)", per, n)
	if per > 760 {
		t.Errorf("%.0f bytes per remembered sender: authCacheGeneration's bound (~50 MB, 2 × 32,768 entries) no longer holds", per)
	}
	runtime.KeepAlive(c)
}
