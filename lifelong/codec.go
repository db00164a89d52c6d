package lifelong

import (
	"fmt"
	"slices"

	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/cluster"
	"github.com/vmihailenco/msgpack/v5"
)

// kbVersion is the version of the knowledge base's encoding.
const kbVersion = 1

type wireKB struct {
	V         int              `msgpack:"v"`
	Config    Config           `msgpack:"config"`
	Tasks     []wireTask       `msgpack:"tasks"`
	Mixture   *cluster.Mixture `msgpack:"mixture"`
	Owner     []int            `msgpack:"owner"`
	Threshold float64          `msgpack:"threshold"`
	Mixed     int              `msgpack:"mixed"`
}

type wireTask struct {
	ID         string  `msgpack:"id"`
	Attr       string  `msgpack:"attr"`
	Model      []byte  `msgpack:"model"`
	Samples    int     `msgpack:"samples"`
	Total      int     `msgpack:"total"`
	Accuracy   float64 `msgpack:"accuracy"`
	Precision  float64 `msgpack:"precision"`
	Components []int   `msgpack:"components"`
}

// MarshalBinary encodes the knowledge base without its samples: its
// configuration, tasks and their models, and the recognition mixture;
// what the edge needs to route and answer samples. The cloud keeps the
// samples apart (see Samples and AddSamples).
func (kb *KB) MarshalBinary() ([]byte, error) {
	w := wireKB{V: kbVersion, Config: kb.Config, Mixture: kb.Mixture, Owner: kb.Owner, Threshold: kb.Threshold, Mixed: kb.mixed}
	for _, t := range kb.Tasks {
		wt := wireTask{ID: t.ID, Attr: t.Attr, Samples: t.Samples, Total: t.Total, Accuracy: t.Accuracy, Precision: t.Precision, Components: t.Components}
		if t.Model != nil {
			b, err := t.Model.MarshalBinary()
			if err != nil {
				return nil, fmt.Errorf("lifelong: encode task %s: %w", t.ID, err)
			}
			wt.Model = b
		}
		w.Tasks = append(w.Tasks, wt)
	}
	return msgpack.Marshal(&w)
}

// Unmarshal decodes a knowledge base MarshalBinary encoded, checking that
// its parts agree (an error wrapping ErrInvalid says where they do not).
// It has no samples.
func Unmarshal(b []byte) (*KB, error) {
	var w wireKB
	if err := msgpack.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: decode a knowledge base: %v", ErrInvalid, err)
	}
	if w.V != kbVersion {
		return nil, fmt.Errorf("%w: a knowledge base of encoding version %d, want %d", ErrInvalid, w.V, kbVersion)
	}
	cfg, err := w.Config.withDefaults()
	if err != nil {
		return nil, err
	}
	kb := &KB{Config: cfg, Mixture: w.Mixture, Owner: w.Owner, Threshold: w.Threshold, mixed: w.Mixed, data: map[string][]Sample{}}
	for c, o := range w.Owner {
		if o < 0 || o >= len(w.Tasks) {
			return nil, fmt.Errorf("%w: cluster %d belongs to task %d of %d", ErrInvalid, c, o, len(w.Tasks))
		}
	}
	components := 0
	for i, wt := range w.Tasks {
		if wt.ID == "" || kb.task(wt.ID) != nil {
			return nil, fmt.Errorf("%w: task %d has the ID %q, empty or repeated", ErrInvalid, i, wt.ID)
		}
		t := &Task{ID: wt.ID, Attr: wt.Attr, Samples: wt.Samples, Total: wt.Total, Accuracy: wt.Accuracy, Precision: wt.Precision, Components: wt.Components}
		if wt.Model != nil {
			if t.Model, err = ml.Unmarshal(wt.Model); err != nil {
				return nil, fmt.Errorf("%w: task %s's model: %v", ErrInvalid, wt.ID, err)
			}
			if t.Model.Inputs() != cfg.Dim || t.Model.Classes() != cfg.Classes {
				return nil, fmt.Errorf("%w: task %s's model maps %d features to %d classes, the knowledge base %d to %d",
					ErrInvalid, wt.ID, t.Model.Inputs(), t.Model.Classes(), cfg.Dim, cfg.Classes)
			}
		}
		for j, c := range wt.Components {
			if c < 0 || c >= len(w.Owner) || w.Owner[c] != i || slices.Contains(wt.Components[:j], c) {
				return nil, fmt.Errorf("%w: task %s claims cluster %d, which is not its", ErrInvalid, wt.ID, c)
			}
		}
		components += len(wt.Components)
		kb.Tasks = append(kb.Tasks, t)
	}
	if kb.Mixture == nil {
		if len(kb.Tasks) > 0 || len(kb.Owner) > 0 {
			return nil, fmt.Errorf("%w: %d tasks and no recognition mixture", ErrInvalid, len(kb.Tasks))
		}
		return kb, nil
	}
	if kb.Mixture.Dim != cfg.Dim || kb.Mixture.K() != len(kb.Owner) || components != len(kb.Owner) {
		return nil, fmt.Errorf("%w: a mixture of %d clusters in %d dimensions for %d owned clusters in %d",
			ErrInvalid, kb.Mixture.K(), kb.Mixture.Dim, len(kb.Owner), cfg.Dim)
	}
	if err := kb.Mixture.Prepare(); err != nil {
		return nil, fmt.Errorf("%w: the recognition mixture: %v", ErrInvalid, err)
	}
	return kb, nil
}

// Clone is a deep copy of the knowledge base, samples and all.
func (kb *KB) Clone() (*KB, error) {
	b, err := kb.MarshalBinary()
	if err != nil {
		return nil, err
	}
	c, err := Unmarshal(b)
	if err != nil {
		return nil, err
	}
	for id, s := range kb.data {
		c.data[id] = slices.Clone(s)
	}
	return c, nil
}

// Samples are the samples task id's model learnt from.
func (kb *KB) Samples(id string) []Sample { return kb.data[id] }

// AddSamples gives task id back the samples its model learnt from, as
// the cloud restores a knowledge base from its store; they are not
// learnt again.
func (kb *KB) AddSamples(id string, samples []Sample) error {
	if kb.task(id) == nil {
		return fmt.Errorf("%w: no task %q", ErrInvalid, id)
	}
	if err := kb.check(samples); err != nil {
		return err
	}
	kb.data[id] = append(kb.data[id], samples...)
	return nil
}
