// Package all lists the learning paradigms Sedna-Go ships, for the sedna
// command and for embedders that run them all: give All() to
// edge.Options.Paradigms and cloud.Options.Paradigms.
package all

import (
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/jointinference"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/paradigm"
)

// All returns every paradigm Sedna-Go ships.
func All() paradigm.Set {
	return paradigm.Set{jointinference.Paradigm{}, federated.Paradigm{}, incremental.Paradigm{}, lifelong.Paradigm{}}
}
