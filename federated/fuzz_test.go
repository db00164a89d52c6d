package federated

import (
	"errors"
	"testing"

	"github.com/sedna-go/sedna/topics"
)

// FuzzWorkerMessages decodes bytes as the three messages of a federated
// round, as the aggregation worker decodes what nodes send (updates,
// joins) and a training worker what the cloud sends (a global model's
// pieces). Nothing may panic, and a refusal is a DecodeError.
func FuzzWorkerMessages(f *testing.F) {
	for _, m := range []struct {
		kind string
		body any
	}{
		{KindUpdate, update{Run: 1, Round: 2, Role: "train-0", Chunk: 0, Chunks: 1, Params: 2, Samples: 10, Data: []byte{0, 0, 128, 63, 0, 0, 0, 64}}},
		{KindJoin, join{Gen: 1, Role: "train-1", Run: 1, Round: 3}},
		{KindJoin, join{Gen: 1, Role: "train-1", Run: 1, Round: 3, Data: &datasetReport{Inputs: 64, Classes: 10, Rows: 100, Bad: 1, Settled: true}}},
		{KindGlobal, global{Gen: 1, Run: 1, Round: 1, Rounds: 10, Chunks: 1, Size: 3, Data: []byte{1, 2, 3}}},
	} {
		raw, err := topics.Encode(m.kind, "fuzz", m.body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := topics.UnmarshalEnvelope(raw, msgLimits)
		if err != nil {
			return
		}
		for _, v := range []any{&update{}, &join{}, &global{}} {
			if err := env.DecodeBody(v); err != nil {
				var de *topics.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("%T: error of type %T: %v", v, err, err)
				}
			}
		}
	})
}
