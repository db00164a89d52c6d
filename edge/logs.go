package edge

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/broker/bridge"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// logChunkTTL is how long a log chunk may wait in the uplink queue: one
// that waited longer (a link down) reaches no one who still waits.
const logChunkTTL = time.Minute

// logs answers the cloud's requests for the logs of the node's workers
// (`sedna logs`): requests come down best effort on topics.JobLogs, chunks
// go up through the bridge (stream events) on topics.NodeJobLogs, where
// the user subscribed.
type logs struct {
	node   string
	srv    *broker.Server
	server *workers.LogServer
	log    *slog.Logger
}

func newLogs(node, dir string, srv *broker.Server, bridge *bridge.Bridge, sup *workers.Supervisor, log *slog.Logger) *logs {
	l := &logs{node: node, srv: srv, log: log.With("component", "logs")}
	l.server = workers.NewLogServer(workers.LogServerConfig{Node: node, Dir: dir, Log: l.log,
		Send: func(job topics.JobRef, req topics.LogRequest, c topics.LogChunk) error {
			raw, err := topics.Encode(topics.KindLogChunk, "edge/logs", c)
			if err != nil {
				return err
			}
			return bridge.SendUntil(topics.StreamBulk, topics.NodeJobLogs(node, job, req.Role, req.Stream), raw, false,
				srv.Now().Add(logChunkTTL))
		},
		Missing: func(job topics.JobRef, role string) string {
			id := job.String() + "/" + role
			if st, ok := sup.Statuses()[id]; ok {
				msg := fmt.Sprintf("worker %s on node %s has written no log yet (%s", id, node, st.Phase)
				if st.Message != "" {
					msg += ": " + st.Message
				}
				return msg + ")"
			}
			return fmt.Sprintf("worker %s does not run on node %s and left no log there", id, node)
		}})
	return l
}

// subscribe listens for log requests. Like the agent's other inline
// subscriptions, it is made before the broker serves.
func (l *logs) subscribe() error {
	_, err := l.srv.Watch(topics.JobLogsFilter(), func(topic string, payload []byte, _ bool) {
		p, err := topics.Parse(topic)
		if err != nil || p.Class != topics.ClassJob || len(payload) == 0 {
			return
		}
		env, err := topics.UnmarshalEnvelope(payload, topics.Limits{})
		if err != nil || env.Kind != topics.KindLogRequest {
			return
		}
		var req topics.LogRequest
		if err := env.DecodeBody(&req); err != nil {
			l.log.Warn("log request not read", "topic", topic, "error", err)
			return
		}
		l.server.Serve(p.Job, req)
	})
	return err
}

// close ends the streams being served and waits for them.
func (l *logs) close() { l.server.Close() }
