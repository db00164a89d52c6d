package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/edge"
	"github.com/sedna-go/sedna/internal/netfault"
	"github.com/sedna-go/sedna/topics"
)

// waitProgress waits for a transfer step that satisfies ok.
func waitProgress(t *testing.T, ch <-chan edge.ModelProgress, what string, ok func(edge.ModelProgress) bool) edge.ModelProgress {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case p := <-ch:
			if ok(p) {
				return p
			}
		case <-deadline:
			t.Fatalf("no model transfer step: %s", what)
		}
	}
}

func jointInference(name, node, model string) string {
	return fmt.Sprintf(`apiVersion: sedna.io/v1alpha1
kind: JointInferenceService
metadata: {name: %s}
spec:
  edgeWorker:
    model: {name: %s}
    hardExampleMining: {name: IBT}
    template: {spec: {nodeName: %s}}
  cloudWorker:
    model: {name: %s}
    template: {spec: {nodeName: cloud}}
---
`, name, model, node, model)
}

// A model of 1.5 MB reaches 3 nodes while one link drops mid-transfer and
// one node restarts: all hold the same digest, no chunk a node completed is
// sent twice, and a corrupt chunk is refused and fetched again.
func TestModelReachesEveryNodeThroughDropsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	model := make([]byte, 1536<<10)
	rand.Read(model)
	// The cloud reads model files from its model directory only.
	modelFile := filepath.Join(dir, "cloud", "models", "big.bin")
	os.MkdirAll(filepath.Dir(modelFile), 0o750)
	os.WriteFile(modelFile, model, 0o644)
	want := sha256.Sum256(model)
	const chunks = 6 // 1.5 MB in chunks of 256 KB

	m := startCloud(t, filepath.Join(dir, "cloud"), "")
	defer m.Close()
	edges := map[string]*edge.Agent{}
	proxies := map[string]*netfault.Proxy{}
	for _, n := range []string{"edge1", "edge2", "edge3"} {
		p := proxyTo(t, m.BrokerURL())
		p.SetBandwidth(300 << 10) // slow enough to act mid-transfer
		proxies[n] = p
		edges[n] = startEdge(t, n, filepath.Join(dir, n), "tcp://"+p.Addr())
		waitLink(t, edges[n])
	}
	defer func() {
		for _, a := range edges {
			a.Close()
		}
	}()
	watch := map[string]<-chan edge.ModelProgress{}
	for n, a := range edges {
		ch, stop := a.Models().Watch()
		defer stop()
		watch[n] = ch
	}
	c := apiClient(t, m.BrokerURL())
	ref := topics.JobRef{Kind: api.KindModel, Namespace: "default", Name: "big"}
	statuses := make(chan api.Status, 256)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go c.Watch(watchCtx, ref, func(s api.Status) { statuses <- s }, nil)
	var docs string
	docs += fmt.Sprintf("apiVersion: sedna.io/v1alpha1\nkind: Model\nmetadata: {name: big}\nspec: {url: \"file://%s\", format: sedna}\n---\n", modelFile)
	for i, n := range []string{"edge1", "edge2", "edge3"} {
		docs += jointInference(fmt.Sprintf("ji-%d", i+1), n, "big")
	}
	rs, err := api.Parse([]byte(docs), "models.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if rep, err := c.Apply(ctx, rs); err != nil || rep.Results[0].Action != "created" {
		t.Fatalf("%v %+v", err, rep)
	}

	// edge1: a corrupt copy of the last chunk arrives before the real one.
	waitProgress(t, watch["edge1"], "edge1 starts", func(p edge.ModelProgress) bool { return p.Total == chunks })
	bad, _ := topics.NewEnvelope(topics.KindModelChunk, "test", topics.ModelChunk{Key: ref.String(), Version: 1, Index: chunks - 1, Data: []byte("not the model")})
	raw, _ := bad.Marshal()
	if err := edges["edge1"].Server().Publish(access.CloudDownlinkPrincipal, topics.JobPrefix(ref)+"chunk", raw, false, 1); err != nil {
		t.Fatal(err)
	}
	// edge2: the link drops after the first chunk.
	waitProgress(t, watch["edge2"], "edge2 has a chunk", func(p edge.ModelProgress) bool { return p.Have >= 1 })
	proxies["edge2"].SetDown(true)
	// edge3: the agent restarts after two chunks.
	waitProgress(t, watch["edge3"], "edge3 has two chunks", func(p edge.ModelProgress) bool { return p.Have >= 2 })
	edges["edge3"].Close()
	edges["edge3"] = startEdge(t, "edge3", filepath.Join(dir, "edge3"), "tcp://"+proxies["edge3"].Addr())
	ch3, stop3 := edges["edge3"].Models().Watch()
	defer stop3()
	watch["edge3"] = ch3
	proxies["edge2"].SetDown(false)

	for _, n := range []string{"edge1", "edge2", "edge3"} {
		if _, err := edges[n].Models().Current("default", "big"); err != nil {
			waitProgress(t, watch[n], n+" done", func(p edge.ModelProgress) bool { return p.Done })
		}
		mdl, err := edges[n].Models().Current("default", "big")
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if got := sha256.Sum256(mdl.Data); got != want || !bytes.Equal(mdl.SHA256, want[:]) || mdl.Version != 1 {
			t.Fatalf("%s holds version %d with sha256 %x, want %x", n, mdl.Version, got, want)
		}
	}
	if n := edges["edge1"].Models().CorruptChunks(); n != 1 {
		t.Fatalf("edge1 refused %d corrupt chunks, want 1", n)
	}
	// Every chunk once per node, and the corrupt one once more.
	if sent := m.Control().ModelChunksSent(); sent != 3*chunks+1 {
		t.Fatalf("%d chunks sent, want %d", sent, 3*chunks+1)
	}
	// The registry shows where the model is.
	deadline := time.After(30 * time.Second)
	for {
		var st api.Status
		select {
		case st = <-statuses:
		case <-deadline:
			t.Fatal("the model's status never showed every node holding it")
		}
		if st.Model != nil && st.Model.Nodes["edge1"] == 1 && st.Model.Nodes["edge2"] == 1 && st.Model.Nodes["edge3"] == 1 {
			if !strings.HasPrefix(st.Model.Digest, "sha256:") || st.Model.Size != int64(len(model)) {
				t.Fatalf("model status %+v", st.Model)
			}
			break
		}
	}
}

// Inference in a tight loop while a new version arrives never fails and
// never sees a mix of versions: each inference takes one whole Model.
func TestInferenceNeverSeesHalfAModel(t *testing.T) {
	_, _, a, c := cloudAndNode(t)
	progress, stop := a.Models().Watch()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	v1, v2 := bytes.Repeat([]byte{1}, 1<<20), bytes.Repeat([]byte{2}, 1<<20)
	if _, err := c.PushModel(ctx, "default", "m", "bin", nil, bytes.NewReader(v1)); err != nil {
		t.Fatal(err)
	}
	rs, _ := api.Parse([]byte(jointInference("ji", "edge1", "m")), "ji.yaml")
	if _, err := c.Apply(ctx, rs); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, progress, "v1 held", func(p edge.ModelProgress) bool { return p.Done && p.Version == 1 })

	// "Inference": the sum of the model's bytes, which is 1<<20 times the
	// version's byte; half of one and half of the other would give neither.
	sum := func(b []byte) int {
		s := 0
		for _, x := range b {
			s += int(x)
		}
		return s
	}
	type result struct {
		n, v1, v2, bad int
		errs           []error
		backwards      bool
	}
	done := make(chan result)
	go func() {
		var r result
		seen2 := false
		for r.v2 < 50 && ctx.Err() == nil { // until the new version served 50 inferences

			mdl, err := a.Models().Current("default", "m")
			r.n++
			if err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			switch s := sum(mdl.Data); {
			case s == 1<<20 && mdl.Version == 1:
				r.v1++
				if seen2 {
					r.backwards = true
				}
			case s == 2<<20 && mdl.Version == 2:
				r.v2++
				seen2 = true
			default:
				r.bad++
			}
		}
		done <- r
	}()
	if _, err := c.PushModel(ctx, "default", "m", "bin", nil, bytes.NewReader(v2)); err != nil {
		t.Fatal(err)
	}
	waitProgress(t, progress, "v2 held", func(p edge.ModelProgress) bool { return p.Done && p.Version == 2 })
	r := <-done
	t.Logf("%d inferences: %d on v1, %d on v2, %d mixed, %d errors", r.n, r.v1, r.v2, r.bad, len(r.errs))
	if len(r.errs) > 0 || r.bad > 0 || r.backwards || r.v1 == 0 || r.v2 == 0 {
		t.Fatalf("inference during the update: %+v", r)
	}
}

// A push larger than the store's memtables registers (reading the upload
// back through an open iterator once deadlocked the writes at this size).
func TestLargeModelPush(t *testing.T) {
	m := startCloud(t, filepath.Join(t.TempDir(), "cloud"), "")
	defer m.Close()
	c := apiClient(t, m.BrokerURL())
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	data := make([]byte, 24<<20)
	rand.Read(data)
	res, err := c.PushModel(ctx, "default", "large", "bin", nil, bytes.NewReader(data))
	sum := sha256.Sum256(data)
	if err != nil || res.Action != "pushed" || !strings.Contains(res.Message, fmt.Sprintf("sha256:%x", sum)) {
		t.Fatalf("%v %+v", err, res)
	}
}
