package httpx

import "github.com/pomona-mdm/pomona/problem"

// StatusOf is the HTTP status of a problem.Kind from the one table
// (statusOf); false for a Kind it does not know. http/mdmhttp uses it to
// render the MDM channel's errors in the device's body shapes with the
// same statuses.
func StatusOf(k problem.Kind) (int, bool) {
	st, ok := statusOf[k]
	return st, ok
}
