package builtin_test

import (
	"fmt"

	"github.com/sedna-go/sedna/plugins/builtin"
)

// The built-ins are one WASM module, embedded in every sedna binary.
func Example() {
	fmt.Println(string(builtin.Wasm[:4]) == "\x00asm", builtin.Source)
	// Output: true builtin
}
