package paradigm_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
)

// A part of one side serves requests on a topic; another asks, with a
// deadline.
func ExampleRequest() {
	bus := paradigmtest.NewMemBus()
	srv, err := paradigm.Serve(bus, "cloud", "sedna/v1/bus/cloud/kb/tasks", 4, nil, func(_ context.Context, _ string, body []byte) ([]byte, error) {
		return []byte("tasks of " + string(body) + ": 3"), nil
	})
	if err != nil {
		panic(err)
	}
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := paradigm.Request(ctx, bus, "cloud", "sedna/v1/bus/cloud/kb/tasks", []byte("thermal-comfort"))
	fmt.Println(string(reply), err)
	// Output: tasks of thermal-comfort: 3 <nil>
}
