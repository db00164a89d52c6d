package bridge

import "github.com/sedna-go/sedna/store"

// gatedStore holds writes of keys with a prefix until the test opens the gate.
type gatedStore struct {
	store.Store
	prefix  string
	pending chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Write(b *store.Batch) error {
	for _, op := range b.Ops() {
		if len(op.Key) >= len(g.prefix) && string(op.Key[:len(g.prefix)]) == g.prefix {
			select {
			case g.pending <- struct{}{}:
			default:
			}
			<-g.gate
			break
		}
	}
	return g.Store.Write(b)
}
