package paradigmtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/sedna-go/sedna/paradigm"
)

// Registry is an in-memory paradigm.Models both sides of a test read, as
// if the model distribution brought each version to every node at once.
// Versions count from 1.
type Registry struct {
	mu       sync.Mutex
	versions map[string][][]byte // by namespace/name
}

var _ paradigm.Models = (*Registry)(nil)

// NewRegistry is a registry holding each of initial (namespace/name →
// bytes) as its model's version 1.
func NewRegistry(initial map[string][]byte) *Registry {
	r := &Registry{versions: map[string][][]byte{}}
	for k, v := range initial {
		r.versions[k] = [][]byte{v}
	}
	return r
}

// Latest returns a model's newest version and its bytes, nil when it is
// the version have.
func (r *Registry) Latest(ns, name string, have uint64) (uint64, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.versions[ns+"/"+name]
	if len(vs) == 0 {
		return 0, nil, fmt.Errorf("model %s has no version", name)
	}
	if uint64(len(vs)) == have {
		return have, nil, nil
	}
	return uint64(len(vs)), vs[len(vs)-1], nil
}

// Register adds data as a model's next version.
func (r *Registry) Register(_ context.Context, ns, name, _, _ string, _ map[string]string, data []byte) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[ns+"/"+name] = append(r.versions[ns+"/"+name], data)
	return uint64(len(r.versions[ns+"/"+name])), nil
}
