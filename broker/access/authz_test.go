package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/sedna-go/sedna/topics"
)

func TestCredentialsFileChecks(t *testing.T) {
	if _, err := NewCredentials(User{Username: "x", PasswordHash: "plain", Role: UserNode}); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("plain password accepted: %v", err)
	}
	h, _ := HashPassword("p")
	if _, err := NewCredentials(User{Username: "x", PasswordHash: h, Role: "root"}); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := NewCredentials(User{Username: "x", PasswordHash: h, Role: UserNode}, User{Username: "x", PasswordHash: h, Role: UserApp}); err == nil {
		t.Error("duplicate user accepted")
	}
	for _, role := range []UserRole{UserNode, UserOperator, UserViewer, UserAdmin} {
		if _, err := NewCredentials(User{Username: "a/b", PasswordHash: h, Role: role}); err == nil {
			t.Errorf("%s user with a name that is not a topic level accepted", role)
		}
	}
	if _, err := NewCredentials(User{Username: "ops", PasswordHash: h, Role: UserOperator, Node: "edge-1"}); err == nil {
		t.Error("an operator with a node accepted")
	}
	c, err := NewCredentials(User{Username: "old", PasswordHash: h, Role: UserCloud})
	if err != nil || c.Users[0].Role != UserOperator {
		t.Errorf("the old role name cloud is read as operator: %v %+v", err, c)
	}
}

// TestAuthorizeTable is the authorization table: every principal on each
// side, every path by which a message enters a broker, against topics from
// every part of the tree (and some that are not valid topics at all). What
// each (side, principal, path) may use is listed; everything else must be
// refused.
func TestAuthorizeTable(t *testing.T) {
	job := topics.JobRef{Kind: "JointInferenceService", Namespace: "default", Name: "ji"}
	named := map[string]string{
		"a.status":       topics.NodeStatusTopic("node-a"),
		"a.up":           topics.Uplink("node-a", topics.StreamEvents),
		"a.downack":      topics.DownAckTopic("node-a"),
		"a.events":       topics.NodeEvents("node-a", "x"),
		"a.job":          topics.NodeJob("node-a", job, "workers/edge"),
		"a.app":          topics.NodeAppPrefix("node-a") + "t",
		"a.dataset":      topics.NodeDataset("node-a", "default", "d"),
		"b.events":       topics.NodeEvents("node-b", "x"),
		"b.status":       topics.NodeStatusTopic("node-b"),
		"to.a.app":       topics.ToNodeAppPrefix("node-a") + "t",
		"to.a.kubeedge":  topics.ToNodeKubeEdgePrefix("node-a") + "$hw/events/device/d/twin/update/delta",
		"to.a.job":       topics.ToNodeJob("node-a", job, "spec"),
		"down.a":         topics.Downlink("node-a"),
		"broadcast":      topics.Broadcast("x"),
		"job.spec":       topics.JobSpec(job),
		"job.status":     topics.JobStatus(job),
		"job.label":      topics.JobLabel(job),
		"cloud.events":   topics.CloudEvents("error"),
		"api.ops":        topics.APIRequestTopic("ops"),
		"api.eve":        topics.APIRequestTopic("eve"),
		"reply.ops":      topics.APIReplyTopic("ops", "c1"),
		"reply.eve":      topics.APIReplyTopic("eve", "c1"),
		"unknown":        topics.Root + "/nowhere/x",
		"foreign":        "sensors/t",
		"kubeedge":       "$hw/events/upload/d",
		"sys":            "$SYS/broker/x",
		"bad.utf8":       "sensors/\xff\xfe",
		"bad.nul":        "sensors/a\x00b",
		"bad.wildcard":   "sensors/+",
		"bad.empty":      "",
		"filter.all":     "#",
		"filter.down.a":  topics.DownFilter("node-a"),
		"filter.down.b":  topics.DownFilter("node-b"),
		"filter.replies": topics.Root + "/cloud/api/+/c1",
	}
	all := []Path{PathPublish, PathRetain, PathWill, PathFrame, PathInline, PathSubscribe}
	// readable: what every subscriber of the kind may read, beside its own list.
	readable := []string{"a.status", "a.up", "a.downack", "a.events", "a.job", "a.app", "a.dataset", "b.events", "b.status",
		"to.a.app", "to.a.kubeedge", "to.a.job", "down.a", "broadcast", "job.spec", "job.status", "job.label", "cloud.events",
		"api.ops", "api.eve", "unknown", "foreign", "kubeedge", "sys", "filter.all", "filter.down.a", "filter.down.b",
		"bad.wildcard"} // a topic with a wildcard is a filter one may subscribe to
	type key struct {
		side Role
		who  string
		path Path
	}
	principals := map[string]Principal{
		"system":   SystemPrincipal("test"),
		"node-a":   NodePrincipal("node-a"),
		"operator": {Kind: Operator, User: "ops"},
		"admin":    {Kind: Admin, User: "ops"},
		"viewer":   {Kind: Viewer, User: "ops"},
		"local":    LocalAppPrincipal,
		"cloud-dl": CloudDownlinkPrincipal,
		"nobody":   {},
	}
	valid := []string{"a.status", "a.up", "a.downack", "a.events", "a.job", "a.app", "a.dataset", "b.events", "b.status",
		"to.a.app", "to.a.kubeedge", "to.a.job", "down.a", "broadcast", "job.spec", "job.status", "job.label", "cloud.events",
		"api.ops", "api.eve", "reply.ops", "reply.eve", "unknown", "foreign", "kubeedge"}
	allowed := map[key][]string{}
	for _, side := range []Role{RoleCloud, RoleEdge} {
		for _, p := range all {
			if p == PathSubscribe {
				allowed[key{side, "system", p}] = append(append([]string{}, readable...), "reply.ops", "reply.eve", "filter.replies")
			} else {
				allowed[key{side, "system", p}] = valid
			}
		}
	}
	// The cloud broker.
	allowed[key{RoleCloud, "node-a", PathPublish}] = []string{"a.status", "a.up", "a.downack"}
	allowed[key{RoleCloud, "node-a", PathRetain}] = []string{"a.status"}
	allowed[key{RoleCloud, "node-a", PathWill}] = []string{"a.status"}
	allowed[key{RoleCloud, "node-a", PathFrame}] = []string{"a.events", "a.job", "a.app", "a.dataset"}
	allowed[key{RoleCloud, "node-a", PathInline}] = []string{"a.events", "a.job", "a.app", "a.dataset"}
	allowed[key{RoleCloud, "node-a", PathSubscribe}] = []string{"down.a", "broadcast", "filter.down.a"}
	for _, who := range []string{"operator", "admin"} {
		allowed[key{RoleCloud, who, PathPublish}] = []string{"to.a.app", "to.a.kubeedge", "broadcast", "api.ops", "job.label", "foreign"}
		allowed[key{RoleCloud, who, PathRetain}] = []string{"to.a.app", "to.a.kubeedge", "foreign"}
		allowed[key{RoleCloud, who, PathWill}] = []string{"foreign"}
		allowed[key{RoleCloud, who, PathSubscribe}] = append(append([]string{}, readable...), "reply.ops")
	}
	allowed[key{RoleCloud, "viewer", PathPublish}] = []string{"api.ops"}
	allowed[key{RoleCloud, "viewer", PathSubscribe}] = append(append([]string{}, readable...), "reply.ops")
	// An edge broker, of node-a.
	for _, p := range []Path{PathPublish, PathRetain, PathWill, PathInline} {
		allowed[key{RoleEdge, "local", p}] = []string{"a.events", "a.job", "a.app", "a.dataset", "foreign", "kubeedge"}
	}
	allowed[key{RoleEdge, "local", PathSubscribe}] = append(append([]string{}, readable...), "reply.ops", "reply.eve", "filter.replies")
	for _, p := range []Path{PathFrame, PathInline} {
		allowed[key{RoleEdge, "cloud-dl", p}] = []string{"broadcast", "job.spec", "job.status", "job.label", "foreign", "kubeedge"}
	}

	universe := make([]string, 0, len(named))
	for n := range named {
		universe = append(universe, n)
	}
	checked := 0
	for _, side := range []Role{RoleCloud, RoleEdge} {
		for who, p := range principals {
			for _, path := range all {
				ok := map[string]bool{}
				for _, n := range allowed[key{side, who, path}] {
					if _, known := named[n]; !known {
						t.Fatalf("the table names an unknown topic %q", n)
					}
					ok[n] = true
				}
				for _, n := range universe {
					if path != PathSubscribe && strings.HasPrefix(n, "filter.") {
						continue // filters are not topics one writes to
					}
					err := Authorize(side, "node-a", p, path, named[n])
					checked++
					if got := err == nil; got != ok[n] {
						t.Errorf("%s broker: %s %s %s (%q): allowed %v, want %v (%v)", side, who, path, n, named[n], got, ok[n], err)
					}
					if err != nil && !errors.Is(err, ErrNotAuthorized) {
						t.Errorf("a refusal does not wrap ErrNotAuthorized: %v", err)
					}
				}
			}
		}
	}
	t.Logf("%d decisions checked", checked)
}

// TestAuthorizeDottedNames: a node and a user whose names have dots get
// exactly their own topics (written with '~' for '.'), not those of a name
// that differs in the dot's place.
func TestAuthorizeDottedNames(t *testing.T) {
	node := NodePrincipal("edge.3")
	if err := Authorize(RoleCloud, "", node, PathPublish, topics.NodeStatusTopic("edge.3")); err != nil {
		t.Errorf("edge.3 publishing its status: %v", err)
	}
	if err := Authorize(RoleCloud, "", node, PathSubscribe, topics.DownFilter("edge.3")); err != nil {
		t.Errorf("edge.3 reading its downlink: %v", err)
	}
	for _, other := range []string{"edge-3", "edgeX3", "edge3"} {
		if err := Authorize(RoleCloud, "", node, PathPublish, topics.NodeStatusTopic(other)); err == nil {
			t.Errorf("edge.3 may publish %s's status", other)
		}
		if err := Authorize(RoleCloud, "", node, PathSubscribe, topics.DownFilter(other)); err == nil {
			t.Errorf("edge.3 may read %s's downlink", other)
		}
	}
	user := Principal{Kind: Operator, User: "ops.team"}
	if err := Authorize(RoleCloud, "", user, PathSubscribe, topics.APIReplyTopic("ops.team", "c1")); err != nil {
		t.Errorf("ops.team reading its replies: %v", err)
	}
	if err := Authorize(RoleCloud, "", user, PathSubscribe, topics.APIReplyTopic("ops-team", "c1")); err == nil {
		t.Error("ops.team may read ops-team's replies")
	}
}
