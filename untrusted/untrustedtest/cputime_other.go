//go:build !unix

package untrustedtest

import "time"

var epoch = time.Now()

// cpuTime falls back to wall time where getrusage(2) is not available.
func cpuTime() time.Duration { return time.Since(epoch) }
