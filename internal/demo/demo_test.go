package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestDemoCountsEveryMessage(t *testing.T) {
	var out bytes.Buffer
	// The deadline only keeps a hang from lasting: the demo's speed is
	// measured by `sedna demo` (110 s by default), not asserted here; under
	// -race on a loaded machine it has taken longer.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n := 3000
	if raceEnabled {
		n = 500
	}
	if err := Run(ctx, &out, Options{PerPhase: n, Version: "dev", Log: discardLogger()}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "nothing lost, nothing duplicated") || !strings.Contains(out.String(), "frames in") ||
		!strings.Contains(out.String(), "joint accuracy") || !strings.Contains(out.String(), "mAP@0.5 joint") ||
		!strings.Contains(out.String(), "swapped in at the edge") || !strings.Contains(out.String(), "0 flagged unseen") {
		t.Fatalf("demo output:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
