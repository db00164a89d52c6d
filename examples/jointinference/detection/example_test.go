package detection_test

import (
	"fmt"

	"github.com/sedna-go/sedna/examples/jointinference/detection"
)

// A test scene as a camera sends it (8-bit pixels) and back.
func Example() {
	_, test, err := detection.Data(1)
	if err != nil {
		panic(err)
	}
	s := test[0]
	frame := detection.Bytes(s)
	back := detection.Scene(frame, s.Width, s.Height)
	fmt.Println(len(frame), "bytes;", back.Width, "x", back.Height, "scene")
	// Output:
	// 1024 bytes; 32 x 32 scene
}
