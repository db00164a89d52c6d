package access

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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

// A definitions file holds each user with its password hashed as RabbitMQ's
// rabbit_password_hashing_sha256 does (a 4-byte salt, then SHA-256 of salt
// and password; a new salt for each user), and its permissions as the
// commands say; a user without commands gets every right on "/"; a user
// without a password, or a command that is not its own permission, is an
// error.
func TestRabbitMQDefinitions(t *testing.T) {
	node, err := RabbitMQ{}.Permissions("edge.3", UserNode)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := RabbitMQDefinitions([]RabbitMQUser{
		{Name: "cloud", Password: "s3cret"},
		{Name: "edge.3", Password: "s3cret", Permissions: node},
	})
	if err != nil {
		t.Fatal(err)
	}
	var defs struct {
		Users []struct {
			Name             string `json:"name"`
			PasswordHash     string `json:"password_hash"`
			HashingAlgorithm string `json:"hashing_algorithm"`
		} `json:"users"`
		Permissions      []struct{ User, VHost, Configure, Write, Read string } `json:"permissions"`
		TopicPermissions []struct{ User, VHost, Exchange, Write, Read string }  `json:"topic_permissions"`
	}
	if err := json.Unmarshal(raw, &defs); err != nil {
		t.Fatal(err)
	}
	if len(defs.Users) != 2 || defs.Users[0].PasswordHash == defs.Users[1].PasswordHash {
		t.Fatalf("users %+v: want two, each with its own salt", defs.Users)
	}
	for _, u := range defs.Users {
		b, err := base64.StdEncoding.DecodeString(u.PasswordHash)
		if err != nil || len(b) != 4+sha256.Size || u.HashingAlgorithm != "rabbit_password_hashing_sha256" {
			t.Fatalf("%s: hash %q (%v), algorithm %q", u.Name, u.PasswordHash, err, u.HashingAlgorithm)
		}
		if sum := sha256.Sum256(append(b[:4:4], "s3cret"...)); !bytes.Equal(sum[:], b[4:]) {
			t.Errorf("%s: the hash is not SHA-256 of its salt and the password", u.Name)
		}
	}
	if len(defs.Permissions) != 2 || defs.Permissions[0].User != "cloud" || defs.Permissions[0].Read != ".*" ||
		defs.Permissions[1].User != "edge.3" || defs.Permissions[1].Configure != node[0][4] {
		t.Errorf("permissions %+v", defs.Permissions)
	}
	if len(defs.TopicPermissions) != 1 || defs.TopicPermissions[0].Exchange != "amq.topic" || defs.TopicPermissions[0].Read != node[1][6] {
		t.Errorf("topic permissions %+v", defs.TopicPermissions)
	}
	if _, err := RabbitMQDefinitions([]RabbitMQUser{{Name: "x"}}); err == nil {
		t.Error("a user without a password was accepted")
	}
	other, _ := RabbitMQ{}.Permissions("edge1", UserNode)
	if _, err := RabbitMQDefinitions([]RabbitMQUser{{Name: "edge2", Password: "p", Permissions: other}}); err == nil {
		t.Error("edge2 got edge1's permissions")
	}
}
