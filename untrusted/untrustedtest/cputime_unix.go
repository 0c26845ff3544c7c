//go:build unix

package untrustedtest

import (
	"syscall"
	"time"
)

// cpuTime is the process's user + system CPU time so far (getrusage(2),
// RUSAGE_SELF).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
