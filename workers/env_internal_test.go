package workers

import (
	"slices"
	"testing"

	"github.com/sedna-go/sedna/api"
)

// TestNodeEnv checks what Config.Env adds to an external worker's
// environment: its variables, but those the template's env sets (the
// template wins), and nothing without Config.Env.
func TestNodeEnv(t *testing.T) {
	s := &Supervisor{cfg: Config{Env: func(Spec) []string { return []string{"TRAIN_DATASET_URL=/data/d.txt", "epochs=9"} }}}
	got := s.nodeEnv(Spec{Worker: api.Worker{Params: map[string]string{"epochs": "3"}}})
	if !slices.Equal(got, []string{"TRAIN_DATASET_URL=/data/d.txt"}) {
		t.Fatalf("got %q", got)
	}
	if got := (&Supervisor{}).nodeEnv(Spec{}); got != nil {
		t.Fatalf("without Config.Env: %q", got)
	}
}
