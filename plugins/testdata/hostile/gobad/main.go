// Command gobad is a hostile test plugin in Go: its parameter "mode" makes
// it panic, spin, eat memory or write to stderr.
package main

import (
	"fmt"
	"os"

	"github.com/sedna-go/sedna/plugins/guest"
)

var sink [][]byte

func init() {
	guest.Miner(guest.Info{Name: "GoBad", Version: "0.0.1",
		Parameters: []guest.Param{{Key: "mode", Default: "ok"}}},
		func(s guest.Sample, p guest.Params) (bool, float32, error) {
			switch p.String("mode") {
			case "panic":
				panic("deliberate")
			case "loop":
				for n := 0; ; n++ {
					if n < 0 {
						return false, 0, nil
					}
				}
			case "bomb":
				for {
					sink = append(sink, make([]byte, 1<<20))
				}
			case "stderr":
				fmt.Fprintln(os.Stderr, "hello from the guest")
			}
			return len(s.Probs) > 0 && s.Probs[0] < 0.5, 0, nil
		})
}

func main() {}
