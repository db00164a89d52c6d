package join_test

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sedna-go/sedna/broker/pki"
	"github.com/sedna-go/sedna/cloud/join"
	"github.com/sedna-go/sedna/store"
)

// An admin's token for a node: its text carries the token's ID, its
// secret and the pin of the cloud's CA.
func Example() {
	dir, _ := os.MkdirTemp("", "join-example")
	defer os.RemoveAll(dir)
	st, err := store.OpenBadger(store.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	ca, _ := pki.NewCA("sedna cloud CA", time.Hour)
	svc, err := join.New(join.Config{CA: ca, Store: st})
	if err != nil {
		panic(err)
	}
	text, tok, err := svc.CreateToken("edge1", time.Hour)
	if err != nil {
		panic(err)
	}
	id, _, pin, err := join.ParseToken(text)
	fmt.Println(tok.Node, id == tok.ID, pin == ca.Pin(), tok.State(time.Now()), err)
	// Output: edge1 true true valid <nil>
}
