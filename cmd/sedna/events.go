package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/topics"
)

func newEventsCmd(g *globals) *cobra.Command {
	var (
		f       controlFlags
		broker  string
		filter  string
		count   int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Subscribe and print messages as JSON lines, envelopes and frames decoded",
		Long: `Subscribe to a broker and print each message as one JSON line: envelopes
with their ID, kind and decoded body, bridge frames with their messages, and
other payloads as text (or base64 when not UTF-8).`,
		Example: `  sedna events                      # the cloud of SEDNA_CLOUD_URL, as SEDNA_USERNAME
  sedna events --cloud tcp://cloud:1884 --username ops --password-file ops.pw
  sedna events --broker tcp://127.0.0.1:1883 --filter '$hw/events/#' --count 10   # a node's broker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.logger(); err != nil {
				return err
			}
			if err := topics.ValidateFilter(filter); err != nil {
				return err
			}
			if err := f.resolve(); err != nil {
				return err
			}
			url := f.url
			if broker != "" {
				url = broker
			}
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			n := 0
			done := make(chan struct{})
			o := paho.NewClientOptions().AddBroker(url).SetUsername(f.username).SetPassword(f.password).
				SetClientID(fmt.Sprintf("sedna-events-%d", time.Now().UnixNano())).SetCleanSession(true).
				SetAutoReconnect(true).SetOrderMatters(true)
			c := paho.NewClient(o)
			if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				return fmt.Errorf("connect %s: %v", url, t.Error())
			}
			defer c.Disconnect(100)
			t := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
				mu.Lock()
				defer mu.Unlock()
				if count > 0 && n >= count {
					return
				}
				writeEvent(out, m.Topic(), m.Payload(), m.Retained())
				n++
				if count > 0 && n == count {
					close(done)
				}
			})
			if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				return fmt.Errorf("subscribe %s: %v", filter, t.Error())
			}
			ctx, stop := untilSignal()
			defer stop()
			var deadline <-chan time.Time
			if timeout > 0 {
				deadline = time.After(timeout)
			}
			select {
			case <-done:
			case <-ctx.Done():
			case <-deadline:
				return fmt.Errorf("timed out after %v with %d messages", timeout, n)
			}
			return nil
		},
	}
	f.addConn(cmd)
	fl := cmd.Flags()
	fl.StringVar(&broker, "broker", "", "another broker than the cloud's (a node's, tcp://127.0.0.1:1883)")
	fl.StringVar(&filter, "filter", topics.TreeFilter(), "topic filter")
	fl.IntVar(&count, "count", 0, "exit after this many messages (0: run until interrupted)")
	fl.DurationVar(&timeout, "timeout", 0, "fail if --count messages did not arrive within this time")
	return cmd
}

type eventLine struct {
	Topic         string     `json:"topic"`
	Retained      bool       `json:"retained,omitempty"`
	Kind          string     `json:"kind,omitempty"`
	ID            string     `json:"id,omitempty"`
	Time          *time.Time `json:"time,omitempty"`
	Source        string     `json:"source,omitempty"`
	ReplyTo       string     `json:"replyTo,omitempty"`
	CorrelationID string     `json:"correlationId,omitempty"`
	Expires       *time.Time `json:"expires,omitempty"`
	Body          any        `json:"body,omitempty"`
	Frame         *frameLine `json:"frame,omitempty"`
	Payload       *string    `json:"payload,omitempty"`
	PayloadBase64 []byte     `json:"payloadBase64,omitempty"`
	Error         string     `json:"error,omitempty"`
}

type frameLine struct {
	Node     string         `json:"node"`
	Stream   string         `json:"stream"`
	Epoch    string         `json:"epoch"`
	Floor    uint64         `json:"floor"`
	Messages []frameMsgLine `json:"messages"`
}

type frameMsgLine struct {
	Seq    uint64 `json:"seq"`
	Topic  string `json:"topic"`
	Bytes  int    `json:"bytes"`
	Retain bool   `json:"retain,omitempty"`
	QoS    byte   `json:"qos"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// writeEvent prints one message as a JSON line.
func writeEvent(w io.Writer, topic string, payload []byte, retained bool) {
	l := eventLine{Topic: topic, Retained: retained}
	switch topics.PayloadOf(topic) {
	case topics.PayloadEnvelope:
		if len(payload) == 0 {
			s := ""
			l.Payload = &s
			break
		}
		e, err := topics.UnmarshalEnvelope(payload, topics.Limits{MaxBody: 64 << 20})
		if err != nil {
			l.Error = err.Error()
			break
		}
		l.Kind, l.Source, l.ReplyTo, l.CorrelationID = e.Kind, e.Source, e.ReplyTo, e.CorrelationID
		l.Time, l.Expires = timePtr(e.Time), timePtr(e.Expires)
		if !e.ID.IsZero() {
			l.ID = e.ID.String()
		}
		var body any
		if len(e.Body) > 0 && topics.Unmarshal("body", e.Body, &body) == nil { // any node may have sent it: bounded
			l.Body = body
		} else if len(e.Body) > 0 {
			l.Body = e.Body
		}
	case topics.PayloadFrame:
		f, err := topics.UnmarshalFrame(payload, topics.Limits{MaxBody: 64 << 20, MaxMessages: 1 << 20})
		if err != nil {
			l.Error = err.Error()
			break
		}
		fl := &frameLine{Node: f.Node, Stream: string(f.Stream), Epoch: fmt.Sprintf("%016x", f.Epoch), Floor: f.Floor}
		for _, m := range f.Messages {
			fl.Messages = append(fl.Messages, frameMsgLine{Seq: m.Seq, Topic: m.Topic, Bytes: len(m.Payload), Retain: m.Retain, QoS: m.QoS})
		}
		l.Frame = fl
	default:
		if utf8.Valid(payload) {
			s := string(payload)
			l.Payload = &s
		} else {
			l.PayloadBase64 = payload
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		b, _ = json.Marshal(eventLine{Topic: topic, Error: err.Error()})
	}
	fmt.Fprintln(w, string(b))
}
