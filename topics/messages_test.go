package topics_test

import (
	"testing"

	"github.com/sedna-go/sedna/topics"
)

// TestRevisionAfter: a later incarnation wins whatever its generation; within
// one incarnation the higher generation wins; equal is not after.
func TestRevisionAfter(t *testing.T) {
	for _, tc := range []struct {
		r, o topics.Revision
		want bool
	}{
		{topics.Revision{Created: 2, Generation: 1}, topics.Revision{Created: 1, Generation: 9}, true},
		{topics.Revision{Created: 1, Generation: 9}, topics.Revision{Created: 2, Generation: 1}, false},
		{topics.Revision{Created: 1, Generation: 3}, topics.Revision{Created: 1, Generation: 2}, true},
		{topics.Revision{Created: 1, Generation: 2}, topics.Revision{Created: 1, Generation: 2}, false},
		{topics.Revision{Generation: 2}, topics.Revision{Generation: 1}, true}, // before revisions: generations alone
		{topics.Revision{Created: 5, Generation: 1}, topics.Revision{Generation: 7}, true},
	} {
		if got := tc.r.After(tc.o); got != tc.want {
			t.Errorf("%+v after %+v: %v, want %v", tc.r, tc.o, got, tc.want)
		}
	}
}
