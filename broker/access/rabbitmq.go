package access

import (
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
