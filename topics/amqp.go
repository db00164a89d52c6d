package topics

import "strings"

// RabbitMQ's MQTT plugin publishes an MQTT message to its topic exchange
// with the topic as routing key, '/' written '.' and '.' written '/'
// (levels of this tree hold no '.': Level). An AMQP reader of those
// messages turns the routing key back with TopicOfRoutingKey.

// UplinkRoutingPattern is the binding key that matches the routing keys of
// every node's uplink frames on RabbitMQ's topic exchange
// (sedna.v1.node.*.up.*): UplinkFilter in AMQP terms.
func UplinkRoutingPattern() string { return routingKey(join(Root, levelNode, "*", nodeUp, "*")) }

// RoutingKeyOf is the routing key RabbitMQ's MQTT plugin gives a message
// published on topic.
func RoutingKeyOf(topic string) string { return routingKey(topic) }

// TopicOfRoutingKey is the MQTT topic of a message RabbitMQ's MQTT plugin
// routed with key.
func TopicOfRoutingKey(key string) string { return routingKey(key) }

// routingKey swaps '.' and '/' (its own inverse).
func routingKey(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}
