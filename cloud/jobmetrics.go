package cloud

import (
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sedna-go/sedna/api"
)

// Jobs' numbers on /metrics: what each job's status says (its workers'
// metrics: a joint inference service's offload ratio, a federated job's
// round, accuracy and loss, a learning job's samples and model version),
// read from the control plane at each scrape.
var (
	jobLabels      = []string{"kind", "namespace", "job"}
	descJobMetric  = prometheus.NewDesc("sedna_job_metric", "A number of a job's status (its workers' metrics), by name.", append(jobLabels, "metric"), nil)
	descJobPhase   = prometheus.NewDesc("sedna_job_phase", "1 for the job's phase.", append(jobLabels, "phase"), nil)
	descJobWorkers = prometheus.NewDesc("sedna_job_workers", "A job's workers: desired, and ready now.", append(jobLabels, "state"), nil)
)

// jobCollector reads the jobs' statuses from the control plane.
type jobCollector struct{ c *ControlPlane }

func (j jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descJobMetric
	ch <- descJobPhase
	ch <- descJobWorkers
}

type jobSnapshot struct {
	kind, ns, name string
	st             api.Status
}

// read runs f on the owner goroutine and waits for it, at most 2 s (a
// scrape or the dashboard of a busy cloud gets nothing rather than
// waiting): false when f did not run.
func (c *ControlPlane) read(f func()) bool {
	done := make(chan struct{})
	c.do(func() {
		defer close(done)
		f()
	})
	select {
	case <-done:
		return true
	case <-c.owner.Stopped():
	case <-time.After(2 * time.Second):
	}
	return false
}

// jobSnapshots copies the jobs' statuses; on the owner goroutine only.
func (c *ControlPlane) jobSnapshots() []jobSnapshot {
	var snap []jobSnapshot
	for _, e := range c.res {
		if e.res == nil || e.res.Kind == api.KindDataset || e.res.Kind == api.KindModel {
			continue
		}
		st := e.status
		st.Metrics = maps.Clone(e.status.Metrics)
		snap = append(snap, jobSnapshot{kind: e.res.Kind, ns: e.res.Metadata.Namespace, name: e.res.Metadata.Name, st: st})
	}
	return snap
}

// Collect asks the control plane's goroutine for a copy of the jobs'
// statuses, waiting at most 2 s (a scrape of a busy cloud gets no job
// series rather than a stuck scrape).
func (j jobCollector) Collect(ch chan<- prometheus.Metric) {
	var snap []jobSnapshot
	if j.c.read(func() { snap = j.c.jobSnapshots() }) {
		emitJobs(ch, snap)
	}
}

// emitJobs sends the series of the jobs' statuses.
func emitJobs(ch chan<- prometheus.Metric, snap []jobSnapshot) {
	for _, s := range snap {
		for name, v := range s.st.Metrics {
			ch <- prometheus.MustNewConstMetric(descJobMetric, prometheus.GaugeValue, v, s.kind, s.ns, s.name, name)
		}
		if s.st.Phase != "" {
			ch <- prometheus.MustNewConstMetric(descJobPhase, prometheus.GaugeValue, 1, s.kind, s.ns, s.name, s.st.Phase)
		}
		ch <- prometheus.MustNewConstMetric(descJobWorkers, prometheus.GaugeValue, float64(s.st.DesiredWorkers), s.kind, s.ns, s.name, "desired")
		ch <- prometheus.MustNewConstMetric(descJobWorkers, prometheus.GaugeValue, float64(s.st.ReadyWorkers), s.kind, s.ns, s.name, "ready")
	}
}
