package hil_test

import (
	"fmt"

	"github.com/sedna-go/sedna/hil"
)

// An inventory of two boards, one of them emulated, checked before any
// SSH connection is made.
func ExampleInventory_Validate() {
	inv := hil.Inventory{Boards: []hil.Board{
		{Name: "pi-1", Arch: "armv7", Address: "10.0.0.21", User: "pi", KeyFile: "/keys/id", KnownHosts: "/keys/known_hosts", DataDir: "/home/pi/sedna"},
		{Name: "qemu-1", Arch: "arm64", Address: "127.0.0.1:2222", User: "ci", KeyFile: "/keys/id", KnownHosts: "/keys/known_hosts",
			DataDir: "/tmp/qemu-1", Emulator: "qemu-aarch64"},
	}}
	fmt.Println(inv.Validate())
	inv.Boards[1].Name = "pi-1"
	fmt.Println(inv.Validate())
	// Output:
	// <nil>
	// hil: invalid inventory: boards[1] pi-1: a second board of that name
}
