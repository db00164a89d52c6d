package jointinference

import (
	"strings"
	"testing"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/paradigm/paradigmtest"
	"github.com/sedna-go/sedna/topics"
)

// The cloud half, with no cloud worker of a service running, answers an
// offload at once with an error, through the node's link to the reply
// topic the offload named, so the edge answers its devices at once; an
// offload that names a reply topic of another node gets no answer. No
// broker: the halves talk over paradigmtest's Net.
func TestCloudAnswersAnOffloadWithoutAWorker(t *testing.T) {
	net := paradigmtest.NewNet()
	half, err := Paradigm{}.Cloud(paradigm.Env{Node: "cloud", Bus: net.Cloud})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if half.Workers["cloud"] == nil {
		t.Fatal("no cloud worker")
	}
	ref := topics.JobRef{Kind: api.KindJointInferenceService, Namespace: "default", Name: "helmet"}
	edge := net.Node("edge-1")
	replies := make(chan []byte, 4)
	stop, _ := edge.Subscribe(topics.JobTopic(ref, "reply"), func(m paradigm.Message) error {
		replies <- m.Payload
		return nil
	})
	defer stop()
	offload := func(replyTo string) {
		env, err := topics.NewEnvelope(KindOffload, "test", offloadBatch{})
		if err != nil {
			t.Fatal(err)
		}
		env.CorrelationID, env.ReplyTo = "c-1", replyTo
		raw, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := edge.SendNow(paradigm.Outbound{Topic: topics.NodeJob("edge-1", ref, "offload"), Payload: raw}); err != nil {
			t.Fatal(err)
		}
	}
	offload(topics.ToNodeJob("edge-1", ref, "reply"))
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1", len(replies))
	}
	env, err := topics.UnmarshalEnvelope(<-replies, topics.DefaultLimits)
	var r offloadReply
	if err != nil || env.Kind != KindReply || env.DecodeBody(&r) != nil || env.CorrelationID != "c-1" ||
		!strings.Contains(r.Error, "no cloud worker of JointInferenceService/default/helmet is running") {
		t.Fatalf("reply %+v (%v): %+v", env, err, r)
	}
	offload(topics.ToNodeJob("edge-2", ref, "reply"))
	if len(replies) != 0 {
		t.Fatal("answered on another node's reply topic")
	}
}
