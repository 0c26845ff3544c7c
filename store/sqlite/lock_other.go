//go:build !unix

package sqlite

import "errors"

// ErrLocked: another process holds the database's lock (a server runs on it).
var ErrLocked = errors.New("the database is in use by a running Pomona server")

// Lock is a no-op where flock(2) does not exist: `pomona restore` then
// cannot tell a running server's store from a stopped one.
func Lock(path string) (unlock func(), err error) { return func() {}, nil }
