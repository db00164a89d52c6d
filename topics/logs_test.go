package topics

import (
	"strings"
	"testing"
	"time"
)

func TestLogTopicsAndBounds(t *testing.T) {
	r := JobRef{Kind: "FederatedLearningJob", Namespace: "default", Name: "fl"}
	chunk := NodeJobLogs("edge1", r, "train-0", "logs-1a2b")
	p, err := Parse(chunk)
	if err != nil || p.Class != ClassNodeJob || p.Node != "edge1" || p.Job != r || p.Rest != "logs/train-0/logs-1a2b" || PayloadOf(chunk) != PayloadEnvelope {
		t.Fatalf("%s: %+v %v", chunk, p, err)
	}
	if !Match(NodeJobLogsFilter(r, "+", "logs-1a2b"), chunk) || Match(NodeJobLogsFilter(r, "+", "logs-other"), chunk) {
		t.Fatalf("%s and %s", NodeJobLogsFilter(r, "+", "logs-1a2b"), chunk)
	}
	if err := ValidateFilter(NodeJobLogsFilter(r, "+", "s")); err != nil {
		t.Fatal(err)
	}
	req := JobLogs(r)
	if p, err := Parse(req); err != nil || p.Class != ClassJob || p.Rest != "logs" || !Match(JobLogsFilter(), req) {
		t.Fatalf("%s: %+v %v", req, p, err)
	}
	// The default downlink rule (job/# to the job tree) delivers the
	// request where the node listens.
	if down := strings.TrimPrefix(ToNodeJobLogs("edge1", r), ToNodePrefix("edge1")); down != strings.TrimPrefix(req, Root+"/") {
		t.Fatalf("sent as %s, listened to as %s", ToNodeJobLogs("edge1", r), req)
	}

	for _, c := range []struct {
		in    LogRequest
		lease time.Duration
		bytes int64
	}{
		{LogRequest{}, DefaultLogLease, DefaultLogBytes},
		{LogRequest{Lease: time.Second, Bytes: 10}, time.Second, 10},
		{LogRequest{Lease: time.Hour, Bytes: 1 << 40}, MaxLogLease, MaxLogBytes},
		{LogRequest{Lease: -1, Bytes: -1}, DefaultLogLease, DefaultLogBytes},
	} {
		if c.in.LeaseOrDefault() != c.lease || c.in.BytesOrDefault() != c.bytes {
			t.Errorf("%+v: lease %v, bytes %d", c.in, c.in.LeaseOrDefault(), c.in.BytesOrDefault())
		}
	}
}
