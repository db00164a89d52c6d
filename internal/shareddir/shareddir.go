// Package shareddir makes directories that every user of the host may
// use, for tests whose workers run as another user than the test (they
// never run as root: when the tests run as root, they run as nobody, and
// t.TempDir's directories are private to the test's user).
package shareddir

import (
	"os"
	"testing"
)

// New makes a directory every user may read, write and enter, removed
// when the test ends.
func New(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sedna-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	return dir
}
