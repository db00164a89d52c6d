package plugins_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/plugins"
)

// Every built-in miner and aggregator is timed on its synthetic input:
// the calls asked for, the input's size, and percentiles in order; a name
// no plugin has is an error.
func TestTimeTimesEveryBuiltin(t *testing.T) {
	ctx := context.Background()
	h, err := plugins.New(ctx, plugins.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	o := plugins.TimeOptions{Calls: 5, Batch: 16, Updates: 3, Weights: 100}
	for _, p := range h.Plugins() {
		ct, err := h.Time(ctx, p.Name, o)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		want := 16
		if ct.Kind == "Aggregator" {
			want = 300
		}
		if ct.Calls != 5 || ct.Size != want || ct.P50 <= 0 || ct.P99 < ct.P50 {
			t.Errorf("%s: %+v", p.Name, ct)
		}
	}
	if _, err := h.Time(ctx, "NoSuch", o); err == nil || !strings.Contains(err.Error(), `no plugin "NoSuch"`) {
		t.Errorf("an unknown plugin: %v", err)
	}
	if e := plugins.Engine(); e != "compiler" && e != "interpreter" {
		t.Errorf("engine %q", e)
	}
}
