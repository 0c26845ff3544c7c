//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked: another process holds the database's lock (a server runs on it).
var ErrLocked = errors.New("the database is in use by a running Pomona server")

// Lock takes the advisory lock <path>.lock that a running server holds on
// its SQLite database, so `pomona restore` can tell a live store from a
// stopped one (SQLite's own locks are only held during transactions). The
// lock is released by unlock or when the process exits, however it exits.
// It returns ErrLocked when another process holds it.
func Lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s.lock is held)", ErrLocked, path)
		}
		return nil, fmt.Errorf("sqlite: lock %s.lock: %w", path, err)
	}
	return func() { f.Close() }, nil
}
