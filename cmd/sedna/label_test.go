package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/incremental"
)

// TestParseLabels reads labels as lines (spaces, tabs or a comma between
// key and class; blank lines and comments skipped) or as a JSON list (a
// detection job's with boxes), and
// refuses a line or an item that is not a key and a class of 0 or more,
// naming it.
func TestParseLabels(t *testing.T) {
	l := func(k string, c int) incremental.Label { return incremental.Label{Key: k, Label: c} }
	for _, tc := range []struct {
		in   string
		want []incremental.Label
		err  string
	}{
		{in: "edge1/1 3\n\n# a comment\nedge1/2,0\nedge2/10\t9  # trailing\n", want: []incremental.Label{l("edge1/1", 3), l("edge1/2", 0), l("edge2/10", 9)}},
		{in: ` [{"key": "edge1/1", "label": 2}, {"key": "e/2", "label": 0}]`, want: []incremental.Label{l("edge1/1", 2), l("e/2", 0)}},
		{in: "", want: nil},
		{in: `[{"key": "e/3", "boxes": [[1, 2, 9, 10, 1, 4]]}]`, want: []incremental.Label{{Key: "e/3", Boxes: [][6]float32{{1, 2, 9, 10, 1, 4}}}}},
		{in: "edge1/1\n", err: `line 1: "edge1/1": want KEY CLASS`},
		{in: "edge1/1 3\nedge1/2 cat\n", err: `line 2: class "cat"`},
		{in: "edge1/1 -1\n", err: `line 1: class "-1"`},
		{in: "edge1/1 1 2\n", err: "line 1"},
		{in: `[{"key": "", "label": 2}]`, err: "label 1: want a key"},
		{in: `[{"key": "a", "label": -2}]`, err: "label 1"},
		{in: `[{"key": "a", "label": "x"}]`, err: "labels:"},
	} {
		got, err := parseLabels(strings.NewReader(tc.in))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case !reflect.DeepEqual(got, tc.want):
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
