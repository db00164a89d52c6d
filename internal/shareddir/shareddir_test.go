package shareddir_test

import (
	"os"
	"testing"

	"github.com/sedna-go/sedna/internal/shareddir"
)

func TestNewIsOpenToEveryUser(t *testing.T) {
	dir := shareddir.New(t)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o777 {
		t.Fatalf("%v %v", st.Mode(), err)
	}
}
