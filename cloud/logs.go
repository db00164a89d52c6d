package cloud

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/topics"
	"github.com/sedna-go/sedna/workers"
)

// logs answers Op "logs" (`sedna logs`): it finds the worker's node and
// has the node stream the worker's log to the user, who subscribed to
// topics.NodeJobLogsFilter before asking. A node's workers' logs stay on
// it: an offline node's cannot be read, and the reply says so. The cloud's
// own workers' logs are served here.
func (c *ControlPlane) logs(_ caller, req topics.APIRequest) topics.APIReply {
	lr := req.Logs
	if lr == nil {
		return topics.APIReply{Error: "logs: the request names no worker"}
	}
	if err := topics.ValidateName("stream", lr.Stream); err != nil {
		return topics.APIReply{Error: "logs: " + err.Error()}
	}
	e, msg := c.lookup(req)
	if e == nil {
		return topics.APIReply{Error: msg}
	}
	w, msg := pickWorker(e.res, lr.Role)
	if msg != "" {
		return topics.APIReply{Error: msg}
	}
	ref := refOf(e.res)
	fwd := *lr
	fwd.Role, fwd.Lease, fwd.Bytes = w.Role, fwd.LeaseOrDefault(), fwd.BytesOrDefault()
	id := e.res.Key() + "/" + w.Role
	rep := topics.APIReply{Nodes: []topics.NodeInfo{{Name: w.Node, State: topics.NodeOnline}},
		Results: []topics.APIResult{{Key: id, Action: "logs"}}}
	if w.Node == c.cfg.Name {
		if c.sup == nil {
			return topics.APIReply{Error: fmt.Sprintf("worker %s runs on the cloud, whose manager keeps no worker logs", id)}
		}
		c.logServer().Serve(ref, fwd)
		return rep
	}
	if c.nodes[w.Node] == "" {
		return topics.APIReply{Error: fmt.Sprintf("node %s has not joined: worker %s has not run, and has no log", w.Node, id)}
	}
	offline := func() topics.APIReply {
		return topics.APIReply{Error: fmt.Sprintf("node %s is offline%s: its workers' logs stay on it until it returns", w.Node, c.offlineSince(w.Node))}
	}
	if c.cfg.Downlink == nil || !c.cfg.Downlink.Online(w.Node) {
		return offline()
	}
	raw, err := topics.Encode(topics.KindLogRequest, "cloud/control", fwd)
	if err != nil {
		return topics.APIReply{Error: "logs: " + err.Error()}
	}
	// Best effort: a live request, worth nothing once its requester gave
	// up, which sends it again to renew it.
	if err := c.cfg.Downlink.SendNow(w.Node, topics.ToNodeJobLogs(w.Node, ref), raw, fwd.Lease); err != nil {
		if errors.Is(err, cloudlink.ErrNodeOffline) {
			return offline()
		}
		return topics.APIReply{Error: fmt.Sprintf("logs: the request did not reach node %s: %v", w.Node, err)}
	}
	return rep
}

// pickWorker finds the worker of r with role; with no role, the job's
// only worker. The message says what is wrong, naming the workers.
func pickWorker(r *api.Resource, role string) (api.Worker, string) {
	ws := r.Workers()
	for _, w := range ws {
		if w.Role == role || role == "" && len(ws) == 1 {
			return w, ""
		}
	}
	if len(ws) == 0 {
		return api.Worker{}, fmt.Sprintf("%s has no workers, so no logs", r.Key())
	}
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = fmt.Sprintf("%s (on %s)", w.Role, w.Node)
	}
	if role == "" {
		return api.Worker{}, fmt.Sprintf("%s has %d workers: name one of %s", r.Key(), len(ws), strings.Join(names, ", "))
	}
	return api.Worker{}, fmt.Sprintf("%s has no worker %q; its workers: %s", r.Key(), role, strings.Join(names, ", "))
}

// offlineSince says since when node is offline, as far as the control
// plane knows: when it learnt so.
func (c *ControlPlane) offlineSince(node string) string {
	t, ok := c.since[node]
	if !ok {
		return ""
	}
	now := c.cfg.Now()
	return fmt.Sprintf(" since %s (%s ago)", t.Format(time.RFC3339), now.Sub(t).Round(time.Second))
}

// logServer is the server of the cloud's workers' logs: chunks are
// published on the cloud broker, where the user subscribed. It is made at
// the first request, on the owner goroutine, and closed by Close.
func (c *ControlPlane) logServer() *workers.LogServer {
	if c.logsrv != nil {
		return c.logsrv
	}
	s := workers.NewLogServer(workers.LogServerConfig{Node: c.cfg.Name, Dir: c.cfg.WorkerLogDir, Log: c.log,
		Send: func(job topics.JobRef, req topics.LogRequest, ch topics.LogChunk) error {
			raw, err := topics.Encode(topics.KindLogChunk, "cloud/control", ch)
			if err != nil {
				return err
			}
			return c.cfg.Bus.Publish(topics.NodeJobLogs(c.cfg.Name, job, req.Role, req.Stream), raw, false, 1)
		},
		Missing: func(job topics.JobRef, role string) string {
			id := job.String() + "/" + role
			if st, ok := c.sup.Statuses()[id]; ok {
				return fmt.Sprintf("worker %s on the cloud has written no log yet (%s)", id, st.Phase)
			}
			return fmt.Sprintf("worker %s does not run on the cloud and left no log there", id)
		}})
	c.logsrv = s
	return s
}
