package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/sedna-go/sedna/topics"
)

// RabbitMQ is where a RabbitMQ cluster serving as the cloud broker takes
// its MQTT traffic: the vhost and the topic exchange of its MQTT plugin.
type RabbitMQ struct {
	VHost    string // default "/"
	Exchange string // default "amq.topic"
}

// RabbitMQCommand is one rabbitmqctl command line (its arguments).
type RabbitMQCommand []string

// String is the command as a shell line, each argument quoted.
func (c RabbitMQCommand) String() string {
	q := make([]string, len(c))
	for i, a := range c {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return "rabbitmqctl " + strings.Join(q, " ")
}

// plainName: a name that is its own topic level and a regular expression
// matching only itself, so that RabbitMQ's {username} stands for it.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Permissions are the rabbitmqctl commands that give user, of role, what
// this package's Authorize gives it on the embedded cloud broker, as far as
// RabbitMQ can say it (docs/SCALE.md, "Authorization on RabbitMQ"): the
// vhost permissions its MQTT connection needs (its subscription queues,
// the exchange) and topic permissions on the exchange, whose patterns
// match routing keys (MQTT's '/' is RabbitMQ's '.', and a name's dots are
// '~' in topics: topics.Level).
//
//   - a node writes its status, frames and acknowledgements, and reads its
//     downlink and broadcasts: nothing of another node's. Its patterns
//     name it as {username}, which RabbitMQ expands per connection, when
//     the name is a plain level; a name with a dot is written out.
//   - an operator (or admin) sends requests on its own topic, messages to
//     nodes' app/ and kubeedge/ topics, broadcasts, labels and topics
//     outside the tree, and reads everything but other users' replies.
//   - a viewer sends requests on its own topic and reads as an operator.
//
// The cloud manager's own user gets CloudPermissions.
//
// The users must exist (rabbitmqctl add_user, with their passwords).
func (r RabbitMQ) Permissions(user string, role UserRole) ([]RabbitMQCommand, error) {
	if err := topics.ValidateName("user", user); err != nil {
		return nil, err
	}
	vhost, ex := r.VHost, r.Exchange
	if vhost == "" {
		vhost = "/"
	}
	if ex == "" {
		ex = "amq.topic"
	}
	q := regexp.QuoteMeta
	level := q(topics.Level(user))
	self := level
	if plainName.MatchString(user) {
		self = "{username}"
	}
	var queues string
	var write, read string
	switch role {
	case UserNode:
		queues = q("mqtt-subscription-"+BridgeClientID(user)) + "qos[01]"
		write = `^sedna\.v1\.node\.` + self + `\.(status|downack|up\.[a-z]+)$`
		// The bridge subscribes to its downlink's subtree (frames and
		// status requests), a binding key ending in '#'.
		read = `^sedna\.v1\.(down\.` + self + `\.(#|frames|status-request)|broadcast\..+)$`
	case UserOperator, UserAdmin, UserCloud, UserViewer:
		queues = `mqtt-subscription-.+`
		read = `^(sedna\.v1\.(cloud\.api\.` + self + `\..+|cloud\.events\..+|job\..+|node\..+|broadcast\..+|to\..+)|(?![#*]|sedna\.).+)$`
		write = `^sedna\.v1\.api\.request\.` + self + `$`
		if role != UserViewer {
			write = `^(sedna\.v1\.(api\.request\.` + self + `|to\.[^.]+\.(app|kubeedge)\..+|broadcast\..+|job\.[^.]+\.[^.]+\.[^.]+\.label)|(?![#*$]|sedna\.).+)$`
		}
	default:
		return nil, fmt.Errorf("access: user %s: role %q has no RabbitMQ permissions (node, operator, viewer or admin)", user, role)
	}
	res := `^(` + q(ex) + `|` + queues + `)$`
	return []RabbitMQCommand{
		{"set_permissions", "-p", vhost, user, "^" + queues + "$", res, res},
		{"set_topic_permissions", "-p", vhost, user, ex, write, read},
	}, nil
}

// CloudPermissions are the commands that give the cloud manager's user
// every right on the vhost and the exchange.
func (r RabbitMQ) CloudPermissions(user string) []RabbitMQCommand {
	vhost, ex := r.VHost, r.Exchange
	if vhost == "" {
		vhost = "/"
	}
	if ex == "" {
		ex = "amq.topic"
	}
	return []RabbitMQCommand{
		{"set_permissions", "-p", vhost, user, ".*", ".*", ".*"},
		{"set_topic_permissions", "-p", vhost, user, ex, ".*", ".*"},
	}
}

// RabbitMQUser is a user of a definitions file (RabbitMQDefinitions): its
// name, its password, and the commands of its permissions (Permissions,
// CloudPermissions); none gives it every right on the vhost "/".
type RabbitMQUser struct {
	Name, Password string
	Permissions    []RabbitMQCommand
}

// RabbitMQDefinitions returns a definitions file that adds users, their
// passwords and their permissions to a RabbitMQ cluster in one step
// (rabbitmqctl import_definitions FILE): a thousand users take a second,
// where one rabbitmqctl call per user takes about half a second. Each
// password is hashed as RabbitMQ's rabbit_password_hashing_sha256 does
// (base64 of a random 4-byte salt followed by SHA-256 of the salt and the
// password), so the file holds no password in clear, but its hashes are
// fast to try: keep it as a secret.
func RabbitMQDefinitions(users []RabbitMQUser) ([]byte, error) {
	type perm struct {
		User      string `json:"user"`
		VHost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	}
	type topicPerm struct {
		User     string `json:"user"`
		VHost    string `json:"vhost"`
		Exchange string `json:"exchange"`
		Write    string `json:"write"`
		Read     string `json:"read"`
	}
	type user struct {
		Name      string   `json:"name"`
		Hash      string   `json:"password_hash"`
		Algorithm string   `json:"hashing_algorithm"`
		Tags      []string `json:"tags"`
	}
	defs := struct {
		Users      []user      `json:"users"`
		Perms      []perm      `json:"permissions"`
		TopicPerms []topicPerm `json:"topic_permissions"`
	}{Users: []user{}, Perms: []perm{}, TopicPerms: []topicPerm{}}
	for _, u := range users {
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("access: a RabbitMQ user needs a name and a password (user %q)", u.Name)
		}
		salt := make([]byte, 4)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(append(append([]byte{}, salt...), u.Password...))
		defs.Users = append(defs.Users, user{Name: u.Name, Hash: base64.StdEncoding.EncodeToString(append(salt, sum[:]...)),
			Algorithm: "rabbit_password_hashing_sha256", Tags: []string{}})
		if u.Permissions == nil {
			defs.Perms = append(defs.Perms, perm{u.Name, "/", ".*", ".*", ".*"})
			continue
		}
		for _, p := range u.Permissions {
			switch {
			case len(p) == 7 && p[0] == "set_permissions" && p[1] == "-p" && p[3] == u.Name:
				defs.Perms = append(defs.Perms, perm{p[3], p[2], p[4], p[5], p[6]})
			case len(p) == 7 && p[0] == "set_topic_permissions" && p[1] == "-p" && p[3] == u.Name:
				defs.TopicPerms = append(defs.TopicPerms, topicPerm{p[3], p[2], p[4], p[5], p[6]})
			default:
				return nil, fmt.Errorf("access: user %s: a permission command a definitions file cannot hold: %q", u.Name, p)
			}
		}
	}
	return json.MarshalIndent(defs, "", " ")
}
