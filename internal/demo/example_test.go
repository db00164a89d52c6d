package demo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sedna-go/sedna/internal/demo"
)

// The demo takes a minute or two, trains models and its timings vary, so
// this example shows the Options `sedna demo` builds and what Run refuses
// before it starts anything.
func ExampleRun() {
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second) // sedna demo --timeout
	defer cancel()
	o := demo.Options{
		PerPhase: 0, // sedna demo --messages 0
		Version:  "dev",
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	fmt.Println(demo.Run(ctx, io.Discard, o))
	// Output:
	// --messages must be positive
}
