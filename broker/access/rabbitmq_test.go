package access

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/topics"
)

// routingKey is a topic as RabbitMQ's MQTT plugin routes it: '/' is '.'.
func routingKey(topic string) string { return strings.ReplaceAll(topic, "/", ".") }

// A node's generated topic patterns, as RabbitMQ applies them (with
// {username} expanded), let it write its own status, frames and
// acknowledgements and read its own downlink and broadcasts, and nothing
// of another node's, also one whose name differs from it by the dot.
func TestRabbitMQNodePermissions(t *testing.T) {
	for _, node := range []string{"edge1", "edge.3"} {
		cmds, err := RabbitMQ{}.Permissions(node, UserNode)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmds) != 2 || cmds[1][0] != "set_topic_permissions" || cmds[1][4] != "amq.topic" {
			t.Fatalf("%s: %v", node, cmds)
		}
		if strings.Contains(node, ".") == strings.Contains(cmds[1][5], "{username}") {
			t.Errorf("%s: {username} should stand for plain names only: %s", node, cmds[1][5])
		}
		expand := func(p string) *regexp.Regexp {
			return regexp.MustCompile(strings.ReplaceAll(p, "{username}", node))
		}
		write, read := expand(cmds[1][5]), expand(cmds[1][6])
		for _, topic := range []string{topics.NodeStatusTopic(node), topics.DownAckTopic(node), topics.Uplink(node, topics.StreamBulk)} {
			if !write.MatchString(routingKey(topic)) {
				t.Errorf("%s may not write %s", node, topic)
			}
		}
		for _, topic := range []string{topics.DownFilter(node), topics.Downlink(node), topics.StatusRequestTopic(node), topics.BroadcastFilter()} {
			if !read.MatchString(routingKey(topic)) {
				t.Errorf("%s may not read %s", node, topic)
			}
		}
		for _, other := range []string{"edge2", "edgeX3", "edge-3", "edge1x"} {
			if other == node {
				continue
			}
			for _, topic := range []string{topics.NodeStatusTopic(other), topics.Uplink(other, topics.StreamBulk), topics.NodeJob(other, topics.JobRef{Kind: "k", Namespace: "n", Name: "j"}, "x")} {
				if write.MatchString(routingKey(topic)) {
					t.Errorf("%s may write %s", node, topic)
				}
			}
			if read.MatchString(routingKey(topics.Downlink(other))) || read.MatchString(routingKey(topics.DownFilter(other))) ||
				read.MatchString(routingKey(topics.StatusRequestTopic(other))) {
				t.Errorf("%s may read %s's downlink", node, other)
			}
		}
		if read.MatchString("#") || read.MatchString("sedna.v1.down.*.frames") {
			t.Errorf("%s may read every downlink by a wildcard", node)
		}
		if !strings.Contains(cmds[0][4], "sedna-bridge-") {
			t.Errorf("%s's queues: %v", node, cmds[0])
		}
	}
	if _, err := (RabbitMQ{}).Permissions("x", UserRole("root")); err == nil {
		t.Error("an unknown role got permissions")
	}
	if _, err := (RabbitMQ{}).Permissions("a/b", UserNode); err == nil {
		t.Error("an invalid name got permissions")
	}
}
