package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/examples/federated/digits"
	"github.com/sedna-go/sedna/federated"
	"github.com/sedna-go/sedna/internal/demo"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/paradigm/all"
	"github.com/sedna-go/sedna/topics"
)

// federated measures federated learning on in-process nodes: the
// framework's overhead per round and the bytes on the wire for a model of
// about 100,000 parameters, then the accuracy of the example at Dirichlet
// alpha 0.1 against centralized training.
func (b *bencher) federated(ctx context.Context) error {
	clients := b.o.FLClients
	names := make([]string, clients)
	for i := range names {
		names[i] = fmt.Sprintf("fl-%d", i)
	}
	pw := randomPassword()
	hash, err := access.HashPassword(pw)
	if err != nil {
		return err
	}
	users := []access.User{{Username: "ops", PasswordHash: hash, Role: access.UserOperator}}
	for _, n := range names {
		users = append(users, access.User{Username: n, PasswordHash: hash, Role: access.UserNode})
	}
	creds, err := access.NewCredentials(users...)
	if err != nil {
		return err
	}
	dir := b.subdir("federated")
	m, err := cloud.Start(cloud.Config{DataDir: filepath.Join(dir, "cloud"), Broker: cloud.BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off",
		Data: cloud.DataConfig{Dirs: []string{dir}}}, // the validation sets
		cloud.Options{Paradigms: all.All(), Logger: b.o.Log, Credentials: creds})
	if err != nil {
		return err
	}
	defer m.Close()
	agents, err := demo.StartFLNodes(dir, m.BrokerURL(), pw, names, b.o.Log)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	c, err := cloud.Dial(cloudlink.ClientConfig{URL: m.BrokerURL(), Username: "ops", Password: pw})
	if err != nil {
		return err
	}
	defer c.Close()

	// The wire: every frame between the nodes and the cloud broker, with
	// its MQTT header (topic and about 8 bytes more).
	var mu sync.Mutex
	var wire int64
	if err := m.Broker().Subscribe("#", 0x7e57, func(topic string, p []byte, _ bool) {
		if pt, err := topics.Parse(topic); err == nil {
			switch pt.Class {
			case topics.ClassUplink, topics.ClassDownlink, topics.ClassDownAck, topics.ClassDownOther:
				mu.Lock()
				wire += int64(len(p) + len(topic) + 8)
				mu.Unlock()
			}
		}
	}); err != nil {
		return err
	}
	type mark struct {
		rec  federated.Record
		wire int64
	}
	var marks []mark
	if err := m.Broker().Subscribe(federated.RoundTopic(topics.JobRef{Kind: api.KindFederatedLearningJob, Namespace: "default", Name: "fl-bench"}), 0x7e58,
		func(_ string, p []byte, _ bool) {
			env, err := topics.UnmarshalEnvelope(p, topics.Limits{})
			var rec federated.Record
			if err == nil && env.DecodeBody(&rec) == nil {
				mu.Lock()
				marks = append(marks, mark{rec, wire})
				mu.Unlock()
			}
		}); err != nil {
		return err
	}

	// Overhead: a model of about 100,000 parameters (64 inputs, 1,333
	// hidden units, 10 classes: 99,985) and 20 samples per node, so that
	// training is one short step.
	const hidden, params = 1333, 64*1333 + 1333 + 1333*10 + 10
	d, err := datasets.Digits()
	if err != nil {
		return err
	}
	rounds := b.o.FLRounds
	o := digits.Options{Job: "fl-bench", Dir: filepath.Join(dir, "data-bench"), ModelDef: fmt.Sprintf("mlp:%d", hidden), Nodes: names, Rounds: rounds, MinClients: clients, RoundTimeout: "1m",
		BatchSize: 20, Epochs: 1, NoValidation: true,
		Extra: map[string]string{"SEDNA_FL_INPUTS": "64", "SEDNA_FL_CLASSES": "10"}}
	if _, err := digits.Write(o); err != nil {
		return err
	}
	for i, n := range names { // 20 samples each, replacing the example's parts
		idx := make([]int, 20)
		for j := range idx {
			idx[j] = (i*20 + j) % d.Rows
		}
		part, _ := d.Subset(idx)
		if err := digits.WriteCSV(digits.CSVPath(o, n), part); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "\n## federated learning: %d in-process nodes, %d parameters (%.0f KB of float32), %d rounds, FedAvg\n\n",
		clients, params, float64(params*4)/1000, rounds)
	rs, err := api.Parse([]byte(digits.YAML(o)), "bench.yaml")
	if err != nil {
		return err
	}
	st, err := demo.ApplyFLJob(ctx, c, rs, nil)
	if err != nil {
		return err
	}
	mu.Lock()
	ms := slices.Clone(marks)
	mu.Unlock()
	if len(ms) != rounds {
		return fmt.Errorf("%d round records for %d rounds", len(ms), rounds)
	}
	// The first two rounds include the nodes' start (reading their data,
	// joining): the measure starts at round 3.
	var overhead, total, train []float64
	for _, k := range ms[2:] {
		overhead = append(overhead, 1000*(k.rec.Seconds-k.rec.TrainSeconds))
		total = append(total, 1000*k.rec.Seconds)
		train = append(train, 1000*k.rec.TrainSeconds)
	}
	slices.Sort(overhead)
	raw := float64(2 * clients * params * 4)
	perRound := float64(ms[len(ms)-1].wire-ms[1].wire) / float64(len(ms)-2)
	fmt.Fprintf(b.out, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(b.out, "| round time, mean | %.1f ms |\n| slowest client's training, mean | %.1f ms |\n", mean(total), mean(train))
	fmt.Fprintf(b.out, "| overhead per round (round − slowest training), median / p90 / max | %.1f / %.1f / %.1f ms |\n",
		overhead[len(overhead)/2], overhead[len(overhead)*9/10], overhead[len(overhead)-1])
	fmt.Fprintf(b.out, "| bytes per round on the wire (frames + MQTT headers, both ways) | %.0f |\n", perRound)
	fmt.Fprintf(b.out, "| raw float32 (%d clients × %d params × 4 B, up and down) | %.0f |\n| ratio | %.4f |\n", clients, params, raw, perRound/raw)
	fmt.Fprintf(b.out, "| aggregator's own count (envelopes), last round: up / down | %.0f / %.0f B |\n", st.Metrics["bytesUp"], st.Metrics["bytesDown"])

	// Accuracy at alpha 0.1 (and 0.5), three seeds each, against the same
	// model trained in one place.
	fmt.Fprintf(b.out, "\n| Dirichlet alpha | rounds | seed | federated | centralized | difference (points) |\n|---|---|---|---|---|---|\n")
	for _, alpha := range []float64{0.1, 0.5} {
		var fed, cen float64
		for _, seed := range []uint64{1, 2, 3} {
			o := digits.Options{Job: fmt.Sprintf("alpha%g-seed%d", alpha*10, seed), Dir: filepath.Join(dir, "data"), Nodes: names, Alpha: alpha, Seed: seed,
				Rounds: b.o.FLAccuracyRounds}
			st, err := demo.RunFLJob(ctx, c, o, nil)
			if err != nil {
				return err
			}
			central, err := digits.Centralized(ctx, o)
			if err != nil {
				return err
			}
			acc := st.Metrics["accuracy"]
			fmt.Fprintf(b.out, "| %g | %d | %d | %.4f | %.4f | %+.2f |\n", alpha, o.Rounds, seed, acc, central, 100*(acc-central))
			fed += acc / 3
			cen += central / 3
		}
		fmt.Fprintf(b.out, "| %g | | mean | %.4f | %.4f | **%+.2f** |\n", alpha, fed, cen, 100*(fed-cen))
	}
	return nil
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
