package cloud

import (
	"strings"
	"testing"

	"github.com/sedna-go/sedna/topics"
)

func TestLogAssemblerKeepsTheLogInOrderAndSaysWhatIsMissing(t *testing.T) {
	type step struct {
		chunk topics.LogChunk
		out   string
		note  string
		eof   bool
	}
	cases := []struct {
		name  string
		lines int
		steps []step
	}{
		{"from the start", -1, []step{
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("ab")}, out: "ab"},
			{chunk: topics.LogChunk{Offset: 2, Data: []byte("cd"), EOF: true}, out: "cd", eof: true},
		}},
		{"the end of a longer log", -1, []step{
			{chunk: topics.LogChunk{Offset: 100, Data: []byte("xy")}, out: "xy", note: "[100 earlier bytes of the log not shown]"},
		}},
		{"the last lines: a start inside the log is what was asked", 3, []step{
			{chunk: topics.LogChunk{Offset: 100, Data: []byte("xy")}, out: "xy"},
		}},
		{"an empty first chunk says where the log starts", -1, []step{
			{chunk: topics.LogChunk{Offset: 0}},
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("new")}, out: "new"},
		}},
		{"a repeat is dropped, in whole or in part", -1, []step{
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("abcd")}, out: "abcd"},
			{chunk: topics.LogChunk{Offset: 1, Data: []byte("bc")}},
			{chunk: topics.LogChunk{Offset: 2, Data: []byte("cdef")}, out: "ef"},
		}},
		{"a gap is said", -1, []step{
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("ab")}, out: "ab"},
			{chunk: topics.LogChunk{Offset: 10, Data: []byte("kl")}, out: "kl", note: "[8 bytes of the log skipped]"},
		}},
		{"a truncated log starts again", -1, []step{
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("abcd")}, out: "abcd"},
			{chunk: topics.LogChunk{Offset: 0, Data: []byte("AB"), Truncated: true}, out: "AB", note: "[the log was truncated or replaced: it starts again]"},
			{chunk: topics.LogChunk{Offset: 2, Data: []byte("C")}, out: "C"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := logAssembler{lines: c.lines}
			for i, s := range c.steps {
				data, notes, eof, err := a.take(s.chunk)
				if err != nil || string(data) != s.out || strings.Join(notes, "|") != s.note || eof != s.eof {
					t.Fatalf("step %d: %q %q %v %v; want %q %q %v", i, data, notes, eof, err, s.out, s.note, s.eof)
				}
			}
		})
	}
	a := logAssembler{lines: -1}
	if _, _, _, err := a.take(topics.LogChunk{Error: "worker x does not run on node edge1"}); err == nil || err.Error() != "worker x does not run on node edge1" {
		t.Fatalf("an error chunk: %v", err)
	}
}
