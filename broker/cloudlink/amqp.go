package cloudlink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sedna-go/sedna/topics"
)

// Uplink partitions on RabbitMQ (docs/SCALE.md, "Replicas that share the
// nodes"). The frames every bridge publishes over MQTT land on the MQTT
// plugin's topic exchange; an exchange binding hands them to a
// consistent-hash exchange, which spreads them by routing key (one node's
// stream) over N quorum queues, each with a single active consumer. All of
// a stream's frames go to one queue, in order: the replica that owns the
// queue's partition reads it over AMQP, with the stream's dedup window,
// and hands it over by closing its channel (what it had not acknowledged
// goes back to the queue, in order, for the next owner).

// Partitions names the AMQP objects of one cloud's uplink partitions on a
// RabbitMQ cluster.
type Partitions struct {
	// Name prefixes the exchange and the queues (Name+".uplink",
	// Name+".uplink.N"); the replicas of one cloud share it.
	Name string
	// N is how many partitions there are (queues).
	N int
	// Exchange is the MQTT plugin's topic exchange; default "amq.topic".
	Exchange string
}

// Queue is partition p's queue.
func (p Partitions) Queue(n int) string { return p.Name + ".uplink." + strconv.Itoa(n) }

func (p Partitions) hash() string { return p.Name + ".uplink" }

// Declare makes the exchange, the queues and their bindings (each call
// makes them again, harmlessly). The cluster needs the plugin
// rabbitmq_consistent_hash_exchange.
func (p Partitions) Declare(urls []string, username, password string) error {
	if p.N < 1 || p.Name == "" {
		return fmt.Errorf("broker: uplink partitions need a name and at least one partition (have %q, %d)", p.Name, p.N)
	}
	ex := p.Exchange
	if ex == "" {
		ex = "amq.topic"
	}
	conn, ch, err := amqpChannel(urls, username, password)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.ExchangeDeclare(p.hash(), "x-consistent-hash", true, false, false, false, nil); err != nil {
		if strings.Contains(err.Error(), "invalid exchange type") {
			return fmt.Errorf("broker: uplink partitions: the cluster has no consistent-hash exchange (rabbitmq-plugins enable rabbitmq_consistent_hash_exchange): %w", err)
		}
		return fmt.Errorf("broker: declare exchange %s: %w", p.hash(), err)
	}
	if err := ch.ExchangeBind(p.hash(), topics.UplinkRoutingPattern(), ex, false, nil); err != nil {
		return fmt.Errorf("broker: bind %s to %s: %w", p.hash(), ex, err)
	}
	for n := range p.N {
		q := p.Queue(n)
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
			"x-queue-type": "quorum", "x-single-active-consumer": true}); err != nil {
			return fmt.Errorf("broker: declare queue %s: %w", q, err)
		}
		// A consistent-hash binding's key is the queue's weight.
		if err := ch.QueueBind(q, "1", p.hash(), false, nil); err != nil {
			return fmt.Errorf("broker: bind %s: %w", q, err)
		}
	}
	return nil
}

// Delete removes the exchange and the queues, with what they hold.
func (p Partitions) Delete(urls []string, username, password string) error {
	conn, ch, err := amqpChannel(urls, username, password)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for n := range p.N {
		if _, err := ch.QueueDelete(p.Queue(n), false, false, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ch.ExchangeDelete(p.hash(), false, false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SplitAMQPURLs splits a list of AMQP URLs separated by commas, checking
// each is amqp:// or amqps:// with a host.
func SplitAMQPURLs(s string) ([]string, error) {
	var urls []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("AMQP URL: %w", err)
		}
		if (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Hostname() == "" {
			u.User = nil
			return nil, fmt.Errorf("AMQP URL %q: want amqp://host:port or amqps://host:port", u.Redacted())
		}
		urls = append(urls, raw)
	}
	if len(urls) == 0 {
		return nil, errors.New("no AMQP URL")
	}
	return urls, nil
}

// amqpChannel connects and opens a channel; closing the connection
// closes the channel.
func amqpChannel(urls []string, username, password string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := dialAMQP(urls, username, password)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("broker: amqp channel: %w", err)
	}
	return conn, ch, nil
}

// dialAMQP connects to the first of urls that answers; username and
// password are used where a URL names no user.
func dialAMQP(urls []string, username, password string) (*amqp.Connection, error) {
	if len(urls) == 0 {
		return nil, errors.New("broker: no AMQP URL")
	}
	var errs []error
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("broker: AMQP URL: %w", err)
		}
		if u.User == nil && username != "" {
			u.User = url.UserPassword(username, password)
		}
		conn, err := amqp.DialConfig(u.String(), amqp.Config{Heartbeat: 5 * time.Second, Dial: amqp.DefaultDial(5 * time.Second)})
		if err == nil {
			return conn, nil
		}
		u.User = nil
		errs = append(errs, fmt.Errorf("%s: %w", u.Redacted(), err))
	}
	return nil, fmt.Errorf("broker: no AMQP broker answered: %w", errors.Join(errs...))
}

// AMQPSource is where ConsumeAMQP reads frames: a queue of a RabbitMQ
// cluster, reached through any of URLs.
type AMQPSource struct {
	URLs               []string
	Username, Password string
	Queue              string
	// Prefetch bounds the frames delivered and not yet acknowledged;
	// default 64.
	Prefetch int
	// Tag names the consumer in RabbitMQ's management views.
	Tag string
	// Ready, if set, is called each time the consumer is registered on
	// the queue (it may not be the active one yet).
	Ready func()
}

// ConsumeAMQP reads frames from src until ctx ends, as Start does from an
// MQTT subscription: each frame once by its window, acknowledged once
// handled and stored. A frame that cannot be taken now (a store error, a
// fenced write) closes the channel: it and every frame after it go back
// to the queue in order, and the consumer connects again after a pause.
// A lost connection is made again (another URL, if its node died). It
// returns nil when ctx ends, having closed its channel.
func (c *Consumer) ConsumeAMQP(ctx context.Context, src AMQPSource) error {
	if src.Prefetch <= 0 {
		src.Prefetch = 64
	}
	pause := 250 * time.Millisecond
	failed := 0 // attempts in a row that took nothing
	for ctx.Err() == nil {
		took, err := c.consumeOnce(ctx, src)
		if ctx.Err() != nil {
			return nil
		}
		if took {
			pause, failed = 250*time.Millisecond, 0
		}
		failed++
		if failed == 5 {
			// Said loudly once per streak: the queue's frames wait.
			c.log.Error("consumer: not consuming an AMQP queue; its frames wait", "queue", src.Queue, "error", err, "attempts", failed)
		} else {
			c.log.Warn("consumer: AMQP consumption ended; consuming again", "queue", src.Queue, "error", err, "in", pause)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
	return nil
}

// consumeOnce consumes on one connection until it fails or ctx ends; took
// says whether it acknowledged anything.
func (c *Consumer) consumeOnce(ctx context.Context, src AMQPSource) (took bool, err error) {
	conn, err := dialAMQP(src.URLs, src.Username, src.Password)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	// ctx's end closes the connection at once, whatever waits on it (a
	// channel, a consumption): what was not acknowledged goes back.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	defer ch.Close()
	if err := ch.Qos(src.Prefetch, 0, false); err != nil {
		return false, err
	}
	deliveries, err := ch.Consume(src.Queue, src.Tag, false, false, false, false, nil)
	if err != nil {
		return false, err
	}
	if src.Ready != nil {
		src.Ready()
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return took, nil
		case e := <-closed:
			if e == nil {
				return took, errors.New("connection closed")
			}
			return took, e
		case d, ok := <-deliveries:
			if !ok {
				return took, errors.New("the broker ended the consumption")
			}
			if !c.take(topics.TopicOfRoutingKey(d.RoutingKey), d.Body) {
				return took, errors.New("a frame could not be taken; it comes again")
			}
			if err := d.Ack(false); err != nil {
				return took, err
			}
			took = true
		}
	}
}
