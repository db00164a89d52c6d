package csdk_test

import (
	"bytes"
	"fmt"

	csdk "github.com/sedna-go/sedna/plugins/sdk/c"
)

// The header a C plugin includes travels inside the sedna binary.
func Example() {
	fmt.Println(bytes.Contains(csdk.Header, []byte("SP_ABI_VERSION 1")))
	// Output: true
}
