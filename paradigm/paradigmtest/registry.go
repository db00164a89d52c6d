package paradigmtest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
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

// RetainSpec publishes doc (one Sedna resource in YAML) as the retained
// spec of generation gen on bus, as the control plane delivers a job's
// spec, and returns the job's reference.
func RetainSpec(t testing.TB, bus paradigm.Bus, kind, doc string, gen uint64) topics.JobRef {
	t.Helper()
	res, err := api.ParseDocument([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ref := topics.JobRef{Kind: kind, Namespace: res.Metadata.Namespace, Name: res.Metadata.Name}
	raw, err := topics.Encode(topics.KindSpec, "test", topics.Spec{Key: ref.String(), Generation: gen, Data: []byte(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(topics.JobSpec(ref), raw, true, 1); err != nil {
		t.Fatal(err)
	}
	return ref
}
