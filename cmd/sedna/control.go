package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker/cloudlink"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/ml"
	"github.com/sedna-go/sedna/ml/onnx"
	"github.com/sedna-go/sedna/paradigm"
	"github.com/sedna-go/sedna/topics"
)

// controlFlags say how the CLI reaches the cloud manager: like any client
// of the cloud broker, with credentials (role cloud).
type controlFlags struct {
	url, username, password, passwordFile, namespace string
	timeout                                          time.Duration
}

// The flags' defaults come from the environment when the command runs,
// never when it is defined: a default is printed by --help, and the
// password's would be.
func (f *controlFlags) add(cmd *cobra.Command) {
	f.addConn(cmd)
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the cloud manager")
}

// addConn adds how to reach the cloud broker, for every command that does.
func (f *controlFlags) addConn(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "cloud", "", "the cloud broker (env SEDNA_CLOUD_URL; default tcp://127.0.0.1:1884)")
	cmd.Flags().StringVar(&f.username, "username", "", "user of the cloud broker: role operator, viewer or admin (env SEDNA_USERNAME)")
	cmd.Flags().StringVar(&f.password, "password", "", "its password (env SEDNA_PASSWORD; better --password-file: every user of the host sees a command line)")
	cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "read the password from a file")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// resolve fills what the flags leave empty from the environment and the
// password file.
func (f *controlFlags) resolve() error {
	if f.url == "" {
		f.url = envOr("SEDNA_CLOUD_URL", "tcp://127.0.0.1:1884")
	}
	if f.username == "" {
		f.username = os.Getenv("SEDNA_USERNAME")
	}
	if f.password == "" {
		f.password = os.Getenv("SEDNA_PASSWORD")
	}
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return err
		}
		f.password = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

func (f *controlFlags) dial() (*cloud.Client, error) {
	if err := f.resolve(); err != nil {
		return nil, err
	}
	return cloud.Dial(cloudlink.ClientConfig{URL: f.url, Username: f.username, Password: f.password})
}

// session dials the cloud and makes a context that SIGINT or SIGTERM
// cancels; end closes both.
func (f *controlFlags) session() (c *cloud.Client, ctx context.Context, end func(), err error) {
	if c, err = f.dial(); err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := untilSignal()
	return c, ctx, func() { stop(); c.Close() }, nil
}

func (f *controlFlags) do(ctx context.Context, req topics.APIRequest) (topics.APIReply, error) {
	c, err := f.dial()
	if err != nil {
		return topics.APIReply{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return c.Do(ctx, req)
}

func newApplyCmd() *cobra.Command {
	var (
		f      controlFlags
		files  []string
		strict bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources from Sedna-format YAML and wait for the cloud manager to admit them",
		Long: `Apply Sedna resources (apiVersion sedna.io/v1alpha1: Dataset, Model,
JointInferenceService, IncrementalLearningJob, FederatedLearningJob,
LifelongLearningJob) from files or directories of multi-document YAML, or
from standard input with -f -. The cloud manager validates each one; a
refused document is reported with the field at fault, and the command exits
non-zero. A field Sedna's CRDs do not define is warned about (and refused
with --strict). References to resources or nodes that do not exist yet are
accepted and shown as pending.`,
		Example: "  sedna apply -f examples/sedna/\n  cat job.yaml | sedna apply -f -\n  sedna apply -f job.yaml -f datasets.yaml --cloud tcp://cloud:1884 --username ops --password-file ops.pw",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("no file: give -f FILE|DIR, or -f - for standard input")
			}
			rs, err := readResources(cmd.InOrStdin(), files)
			if err != nil {
				return err
			}
			if strict {
				var unknown []string
				for _, r := range rs {
					for _, u := range r.Unknown {
						unknown = append(unknown, fmt.Sprintf("%s: unknown field %q", r.Origin, u))
					}
				}
				if len(unknown) > 0 {
					return fmt.Errorf("--strict: nothing applied:\n  %s", strings.Join(unknown, "\n  "))
				}
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			rep, err := c.ApplyWith(ctx, rs, strict)
			if err != nil {
				return err
			}
			rejected := 0
			for _, r := range rep.Results {
				for _, w := range r.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "Warning: %s: %s\n", r.Key, w)
				}
				switch r.Action {
				case "rejected":
					rejected++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s rejected: %s\n", r.Key, r.Message)
				default:
					line := fmt.Sprintf("%s %s", r.Key, r.Action)
					if r.Pending != "" {
						line += " (pending: waiting for " + r.Pending + ")"
					}
					fmt.Fprintln(cmd.OutOrStdout(), line)
				}
			}
			if rejected > 0 {
				return fmt.Errorf("%d of %d resources rejected", rejected, len(rep.Results))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of YAML, or - for standard input; repeatable")
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse documents with fields Sedna's CRDs do not define, instead of warning")
	return cmd
}

// readResources reads the resources of files, "-" being stdin (once).
func readResources(stdin io.Reader, files []string) ([]*api.Resource, error) {
	var rs []*api.Resource
	readStdin := false
	for _, p := range files {
		var (
			more []*api.Resource
			err  error
		)
		if p == "-" {
			if readStdin {
				return nil, errors.New("-f - given twice")
			}
			readStdin = true
			var b []byte
			if b, err = io.ReadAll(stdin); err != nil {
				return nil, fmt.Errorf("standard input: %w", err)
			}
			more, err = api.Parse(b, "stdin")
		} else {
			more, err = api.ParseFiles(p)
		}
		if err != nil {
			return nil, err
		}
		rs = append(rs, more...)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("no resource in %s", strings.Join(files, ", "))
	}
	return rs, nil
}

// decodeStatus reads an object's status; an error is never an empty one.
func decodeStatus(o topics.APIObject) (api.Status, error) {
	var st api.Status
	if err := json.Unmarshal(o.Status, &st); err != nil {
		return st, fmt.Errorf("%s: status does not decode: %w", o.Key, err)
	}
	return st, nil
}

func age(ns int64) string {
	d := time.Since(time.Unix(0, ns)).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newGetCmd() *cobra.Command {
	var (
		f      controlFlags
		output string
		all    bool
		watch  bool
	)
	cmd := &cobra.Command{
		Use:   "get KIND|all|nodes [NAME]",
		Short: "List resources of a kind (or all, or the nodes) with their phase; -w follows changes",
		Long: `List resources with their phase, READY workers (running/desired), RESTARTS
and AGE, or one resource by name; -o yaml|json prints the object (a list
without NAME). 'get nodes' lists every node: online or offline, last seen,
what the cloud holds for it, its version, OS/arch and workers. -w prints
the list, then each resource again when its status changes.`,
		Example: "  sedna get all\n  sedna get datasets -A\n  sedna get fl surface-defect-detection -o yaml\n  sedna get fl -w\n  sedna get nodes",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := strings.ToLower(args[0]); n == "nodes" || n == "node" || n == "no" {
				return getNodes(cmd, &f, args, output)
			}
			req := topics.APIRequest{Op: "get", Kind: args[0], Namespace: f.namespace}
			if len(args) == 2 {
				req.Name = args[1]
			}
			if all || args[0] == "all" && !cmd.Flags().Changed("namespace") {
				req.Namespace = ""
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var w *listWatch
			if watch {
				// Subscribed before the list is read: no change falls
				// between the two.
				if w, err = startListWatch(cmd, c, req, output); err != nil {
					return err
				}
				defer w.stop()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			rep, err := c.Do(ctx, req)
			cancel()
			if err != nil {
				return err
			}
			if len(args) == 2 && output != "" {
				if err := printObject(cmd.OutOrStdout(), rep.Objects[0], output); err != nil || !watch {
					return err
				}
			} else if err := printObjects(cmd.OutOrStdout(), rep.Objects, output); err != nil || !watch {
				return err
			}
			return w.follow(rep.Objects)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the object with its status (a list without NAME)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after the list, print each resource again as its status changes")
	return cmd
}

// listWatch prints a resource's row (or object) each time its status
// changes after the list, until interrupted.
type listWatch struct {
	cmd    *cobra.Command
	req    topics.APIRequest
	output string
	stop   func()
	mu     sync.Mutex
	listed bool
	early  []statusChange // before the list was printed
	last   map[string]string
}

type statusChange struct {
	key     string
	st      api.Status
	deleted bool
}

func startListWatch(cmd *cobra.Command, c *cloud.Client, req topics.APIRequest, output string) (*listWatch, error) {
	kind := ""
	if req.Kind != "all" {
		var ok bool
		if kind, ok = cloud.Resolve(req.Kind); !ok {
			return nil, errors.New(api.UnknownKind(req.Kind))
		}
	}
	w := &listWatch{cmd: cmd, req: req, output: output, last: map[string]string{}}
	errOut := cmd.ErrOrStderr()
	stop, err := c.SubscribeStatuses(kind, req.Namespace, func(key string, st api.Status, deleted bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.listed {
			w.early = append(w.early, statusChange{key, st, deleted})
			return
		}
		w.show(statusChange{key, st, deleted})
	}, func(err error) { fmt.Fprintln(errOut, "error:", err) })
	if err != nil {
		return nil, err
	}
	w.stop = stop
	return w, nil
}

// follow takes the listed objects as what was shown, shows what changed
// since, and then each change until interrupted.
func (w *listWatch) follow(listed []topics.APIObject) error {
	ctx, stop := signal.NotifyContext(w.cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w.mu.Lock()
	for _, o := range listed {
		w.last[o.Key] = normalized(o.Status)
	}
	for _, ch := range w.early {
		w.show(ch)
	}
	w.early, w.listed = nil, true
	w.mu.Unlock()
	<-ctx.Done()
	return nil
}

// normalized is a status as JSON, the same for the same status wherever
// it was decoded (msgpack gives times in the local zone, JSON in theirs).
func normalized(raw []byte) string {
	var st api.Status
	if json.Unmarshal(raw, &st) != nil {
		return string(raw)
	}
	return statusPrint(st)
}

func statusPrint(st api.Status) string {
	st.Conditions = slices.Clone(st.Conditions)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.LastHeartbeatTime, c.LastTransitionTime = c.LastHeartbeatTime.UTC(), c.LastTransitionTime.UTC()
	}
	st.Workers = slices.Clone(st.Workers)
	for i := range st.Workers {
		st.Workers[i].Updated = st.Workers[i].Updated.UTC()
	}
	for _, t := range []**time.Time{&st.StartTime, &st.CompletionTime} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	b, _ := json.Marshal(st)
	return string(b)
}

func (w *listWatch) show(ch statusChange) {
	if w.req.Name != "" && !strings.HasSuffix(ch.key, "/"+w.req.Name) {
		return
	}
	out := w.cmd.OutOrStdout()
	raw, _ := json.Marshal(ch.st)
	print := statusPrint(ch.st)
	if ch.deleted {
		if _, shown := w.last[ch.key]; shown {
			delete(w.last, ch.key)
			fmt.Fprintf(out, "%s deleted\n", ch.key)
		}
		return
	}
	if w.last[ch.key] == print {
		return // the retained copy of what the list showed, or no change
	}
	w.last[ch.key] = print
	// A status alone: the row's generation and age are not in it.
	o := topics.APIObject{Key: ch.key, Status: raw}
	if w.output != "" {
		_ = printObject(out, o, w.output)
		return
	}
	_ = printRows(out, []topics.APIObject{o}, false)
}

// objectDoc is a resource's document with its status, as kubectl shows it.
func objectDoc(o topics.APIObject) (map[string]any, error) {
	doc := map[string]any{}
	if len(o.Source) > 0 {
		if err := json.Unmarshal(o.Source, &doc); err != nil {
			return nil, fmt.Errorf("%s: stored document: %w", o.Key, err)
		}
	} else {
		parts := strings.SplitN(o.Key, "/", 3)
		doc["kind"], doc["metadata"] = parts[0], map[string]any{"namespace": parts[1], "name": parts[2]}
	}
	var st any
	if err := json.Unmarshal(o.Status, &st); err != nil {
		return nil, fmt.Errorf("%s: status: %w", o.Key, err)
	}
	doc["status"] = st
	return doc, nil
}

func encode(w io.Writer, v any, output string) error {
	var out []byte
	var err error
	switch output {
	case "json":
		out, err = json.MarshalIndent(v, "", "  ")
	case "yaml":
		out, err = yaml.Marshal(v)
	default:
		return fmt.Errorf("-o %q: want json or yaml", output)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, strings.TrimRight(string(out), "\n"))
	return err
}

// printObject prints one resource as json or yaml: the object, not a list.
func printObject(w io.Writer, o topics.APIObject, output string) error {
	doc, err := objectDoc(o)
	if err != nil {
		return err
	}
	return encode(w, doc, output)
}

func printObjects(w io.Writer, objs []topics.APIObject, output string) error {
	switch output {
	case "json", "yaml":
		list := make([]map[string]any, 0, len(objs))
		for _, o := range objs {
			doc, err := objectDoc(o)
			if err != nil {
				return err
			}
			list = append(list, doc)
		}
		// As kubectl prints a list: a List with items.
		return encode(w, map[string]any{"apiVersion": "v1", "kind": "List", "items": list}, output)
	case "":
	default:
		return fmt.Errorf("-o %q: want json or yaml", output)
	}
	return printRows(w, objs, true)
}

// printRows prints resources as a table, with its header if header.
func printRows(w io.Writer, objs []topics.APIObject, header bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tPHASE\tREADY\tRESTARTS\tAGE\tINFO")
	}
	for _, o := range objs {
		parts := strings.SplitN(o.Key, "/", 3)
		st, err := decodeStatus(o)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t%v\n", parts[0], parts[1], parts[2], "Unknown", err)
			continue
		}
		ready, restarts := "-", "-"
		if st.DesiredWorkers > 0 {
			ready, restarts = fmt.Sprintf("%d/%d", st.ReadyWorkers, st.DesiredWorkers), strconv.Itoa(st.Restarts)
		}
		created := "-"
		if o.Created > 0 {
			created = age(o.Created)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", parts[0], parts[1], parts[2], st.Phase, ready, restarts, created, info(st))
	}
	return tw.Flush()
}

// info is the INFO column: what a resource holds, does or waits for.
func info(st api.Status) string {
	switch {
	case st.Stage != nil && st.Phase == api.ConditionRunning:
		serving := "initial"
		if st.Stage.Serving > 0 {
			serving = fmt.Sprintf("v%d", st.Stage.Serving)
		}
		return fmt.Sprintf("cycle %d %s/%s, serving %s, %d deployed", st.Stage.Cycle, st.Stage.Stage, st.Stage.Phase, serving, st.Stage.Deployed)
	case st.Progress != nil && st.Phase == api.ConditionRunning:
		return fmt.Sprintf("%d/%d %s", st.Progress.Done, st.Progress.Total, st.Progress.Unit)
	case st.NumberOfSamples != nil && st.Phase == api.PhaseReady:
		return fmt.Sprintf("samples=%d", *st.NumberOfSamples)
	case st.Model != nil && st.Phase == api.PhaseReady:
		return fmt.Sprintf("version %d", st.Model.Version)
	}
	for _, c := range st.Conditions {
		if c.Status == api.StatusTrue && c.Type != api.ConditionAccepted && c.Stage == "" && c.Message != "" {
			return c.Message
		}
	}
	for _, c := range st.Conditions { // CrashLoopBackOff: Running is False with why
		if c.Type == api.ConditionRunning && c.Reason == api.PhaseCrashLoop {
			return c.Message
		}
	}
	return ""
}

// getNodes prints every node the control plane knows of.
func getNodes(cmd *cobra.Command, f *controlFlags, args []string, output string) error {
	rep, err := f.do(cmd.Context(), topics.APIRequest{Op: "nodes"})
	if err != nil {
		return err
	}
	nodes := rep.Nodes
	if len(args) == 2 {
		nodes = slices.DeleteFunc(nodes, func(n topics.NodeInfo) bool { return n.Name != args[1] })
		if len(nodes) == 0 {
			return fmt.Errorf("node %q not found", args[1])
		}
	}
	if output != "" {
		if len(args) == 2 {
			return encode(cmd.OutOrStdout(), nodes[0], output)
		}
		return encode(cmd.OutOrStdout(), map[string]any{"kind": "List", "items": nodes}, output)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tLAST SEEN\tBACKLOG\tOLDEST\tVERSION\tOS/ARCH\tWORKERS")
	for _, n := range nodes {
		seen, oldest, osArch := "never", "-", "-"
		switch {
		case n.State == topics.NodeOnline:
			seen = "now" // connected: its bridge's keepalive says so
		case n.LastSeen > 0:
			seen = age(n.LastSeen) + " ago"
		}
		if n.Oldest > 0 {
			oldest = age(n.Oldest)
		}
		if n.OS != "" {
			osArch = n.OS + "/" + n.Arch
		}
		version := n.Version
		if version == "" {
			version = "-"
		}
		workers := "-"
		if len(n.Workers) > 0 {
			workers = strings.Join(n.Workers, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, n.State, seen, n.Backlog, oldest, version, osArch, workers)
	}
	return tw.Flush()
}

func newDescribeCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:     "describe KIND NAME",
		Short:   "Show a resource: status, conditions, workers, what it waits for, the fields kept but not used",
		Example: "  sedna describe jointinferenceservice helmet-detection-inference-example",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := f.do(cmd.Context(), topics.APIRequest{Op: "describe", Kind: args[0], Name: args[1], Namespace: f.namespace})
			if err != nil {
				return err
			}
			return describe(cmd.OutOrStdout(), rep.Objects[0])
		},
	}
	f.add(cmd)
	return cmd
}

func describe(w io.Writer, o topics.APIObject) error {
	parts := strings.SplitN(o.Key, "/", 3)
	st, err := decodeStatus(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Name:        %s\nNamespace:   %s\nKind:        %s\nGeneration:  %d\nCreated:     %s (%s ago)\nPhase:       %s\n",
		parts[2], parts[1], parts[0], o.Generation, time.Unix(0, o.Created).UTC().Format(time.RFC3339), age(o.Created), st.Phase)
	if st.DesiredWorkers > 0 {
		fmt.Fprintf(w, "Ready:       %d/%d workers, %d restarts\n", st.ReadyWorkers, st.DesiredWorkers, st.Restarts)
	}
	if st.NumberOfSamples != nil {
		fmt.Fprintf(w, "Samples:     %d\n", *st.NumberOfSamples)
	}
	if st.Progress != nil {
		fmt.Fprintf(w, "Progress:    %d/%d %s\n", st.Progress.Done, st.Progress.Total, st.Progress.Unit)
	}
	if sg := st.Stage; sg != nil {
		serving := "the initial model serves"
		if sg.Serving > 0 {
			serving = fmt.Sprintf("model version %d serves", sg.Serving)
		}
		fmt.Fprintf(w, "Stage:       cycle %d, %s %s; %s, %d cycles deployed\n", sg.Cycle, sg.Stage, sg.Phase, serving, sg.Deployed)
		if sg.Done {
			fmt.Fprintf(w, "Stopped:     %s\n", sg.Reason)
		}
	}
	if md := st.Model; md != nil {
		fmt.Fprintf(w, "Version:     %d (%s, %d bytes, %s, from %s)\n", md.Version, md.Format, md.Size, md.Digest, md.Source)
		if len(md.Metrics) > 0 {
			keys := make([]string, 0, len(md.Metrics))
			for k := range md.Metrics {
				keys = append(keys, k+"="+md.Metrics[k])
			}
			sort.Strings(keys)
			fmt.Fprintf(w, "Its metrics: %s\n", strings.Join(keys, " "))
		}
		if len(md.Nodes) > 0 {
			var held []string
			for n, v := range md.Nodes {
				held = append(held, fmt.Sprintf("%s=v%d", n, v))
			}
			sort.Strings(held)
			fmt.Fprintf(w, "On nodes:    %s\n", strings.Join(held, " "))
		}
	}
	if len(st.Pending) > 0 {
		fmt.Fprintf(w, "Waiting for: %s\n", strings.Join(st.Pending, "\n             "))
	}
	if len(st.Metrics) > 0 {
		fmt.Fprintf(w, "Metrics:     %s\n", formatMetrics(st.Metrics, "\n             "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tSTAGE\tREASON\tLAST TRANSITION\tMESSAGE")
		for _, c := range st.Conditions {
			stage := c.Stage
			if stage == "" {
				stage = "-"
			}
			msg := c.Message
			if c.Data != "" {
				msg += " " + c.Data
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, stage, c.Reason, c.LastTransitionTime.UTC().Format(time.RFC3339),
				strings.TrimSpace(msg))
		}
		tw.Flush()
	}
	if len(st.Workers) > 0 {
		fmt.Fprintln(w, "Workers:")
		fmt.Fprintln(tw, "  ROLE\tNODE\tPHASE\tRESTARTS\tEXIT\tMESSAGE\tLAST ERROR")
		for _, wk := range st.Workers {
			exit := "-"
			if wk.ExitCode != nil {
				exit = fmt.Sprint(*wk.ExitCode)
			}
			phase := wk.Phase
			if wk.CrashLooping() {
				phase = api.WorkerCrashLoop
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\n", wk.Role, wk.Node, phase, wk.Restarts, exit, wk.Message, wk.LastError)
		}
		tw.Flush()
		for _, wk := range st.Workers { // numbers each worker has of its own
			own := map[string]float64{}
			for k, v := range wk.Metrics {
				if _, shown := st.Metrics[k]; !shown {
					own[k] = v
				}
			}
			if len(own) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", wk.Role, formatMetrics(own, " "))
			}
		}
	}
	if len(o.Ignored) > 0 {
		fmt.Fprintln(w, "Ignored (kept as written, not used by Sedna-Go):")
		for _, f := range o.Ignored {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	var doc map[string]any
	_ = json.Unmarshal(o.Source, &doc)
	spec, _ := yaml.Marshal(doc["spec"])
	fmt.Fprintf(w, "Spec:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(string(spec)), "\n", "\n  "))
	return nil
}

func newDeleteCmd() *cobra.Command {
	var (
		f     controlFlags
		files []string
	)
	cmd := &cobra.Command{
		Use:     "delete KIND NAME | -f FILE|DIR|-",
		Short:   "Delete resources; their workers stop on every node, offline ones when they return",
		Example: "  sedna delete fl surface-defect-detection\n  sedna delete -f examples/sedna/",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(files) > 0 {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var reqs []topics.APIRequest
			if len(files) > 0 {
				rs, err := readResources(cmd.InOrStdin(), files)
				if err != nil {
					return err
				}
				for _, r := range rs {
					reqs = append(reqs, topics.APIRequest{Op: "delete", Kind: r.Kind, Name: r.Metadata.Name, Namespace: r.Metadata.Namespace})
				}
			} else {
				reqs = append(reqs, topics.APIRequest{Op: "delete", Kind: args[0], Name: args[1], Namespace: f.namespace})
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			failed := 0
			for _, req := range reqs {
				ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
				rep, err := c.Do(ctx, req)
				cancel()
				if err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s/%s/%s: %v\n", req.Kind, req.Namespace, req.Name, err)
					continue
				}
				for _, r := range rep.Results {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", r.Key, r.Action)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d resources not deleted", failed, len(reqs))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "delete the resources of a file or directory of YAML, or - for standard input; repeatable")
	return cmd
}

func newWatchCmd() *cobra.Command {
	var (
		f     controlFlags
		until time.Duration
	)
	cmd := &cobra.Command{
		Use:   "watch KIND NAME",
		Short: "Follow a resource's status and events as they happen (a progress bar over rounds or stages)",
		Long: `Print a resource's status and each of its events as they happen. Where a job
reports progress (rounds, stages) a progress bar follows it. Ends when the job
completes (exit 0) or fails (exit 1), on Ctrl-C, or after --for.`,
		Example: "  sedna watch fl surface-defect-detection",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := cloud.Resolve(args[0])
			if !ok {
				return errors.New(api.UnknownKind(args[0]))
			}
			ref := topics.JobRef{Kind: kind, Namespace: f.namespace, Name: args[1]}
			if err := ref.Validate(); err != nil {
				return err
			}
			c, ctx, closeSession, err := f.session()
			if err != nil {
				return err
			}
			defer closeSession()
			if until > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, until)
				defer cancel()
			}
			// Make sure it exists first.
			qctx, qcancel := context.WithTimeout(ctx, f.timeout)
			_, err = c.Do(qctx, topics.APIRequest{Op: "describe", Kind: kind, Name: ref.Name, Namespace: ref.Namespace})
			qcancel()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w := &watcher{out: out, bars: isTerminal(out)}
			end := make(chan error, 1)
			ctx, cancel := context.WithCancel(ctx)
			// The watch writes to out until it returns: the command returns
			// after it (a test's buffer is read as soon as it does).
			watched := make(chan struct{})
			defer func() { cancel(); <-watched }()
			go func() {
				defer close(watched)
				err := c.Watch(ctx, ref, func(st api.Status) {
					if done, err := w.status(st); done {
						select {
						case end <- err:
						default:
						}
						cancel()
					}
				}, w.event)
				if err != nil && ctx.Err() == nil {
					select { // a watch that ended by itself: say why
					case end <- fmt.Errorf("watch: %w", err):
					default:
					}
					cancel()
				}
			}()
			select {
			case err := <-end:
				return err
			case <-ctx.Done():
				select {
				case err := <-end:
					return err
				default:
				}
				return nil
			}
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&until, "for", 0, "stop watching after this long (0: until the job ends)")
	return cmd
}

// formatMetrics writes metrics sorted by name, as name=value, joined by sep.
func formatMetrics(m map[string]float64, sep string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		names[i] = k + "=" + strconv.FormatFloat(m[k], 'g', 6, 64)
	}
	return strings.Join(names, sep)
}

// watcher prints what a watch sees; callbacks come one at a time. On a
// terminal progress is a bar; in a pipe or a file, a line per step.
type watcher struct {
	out      io.Writer
	bars     bool
	bar      *progressbar.ProgressBar
	phase    string
	metrics  string
	progress string
}

func (w *watcher) status(st api.Status) (bool, error) {
	if p := st.Progress; p != nil && p.Total > 0 {
		if w.bars {
			if w.bar == nil {
				w.bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(w.out),
					progressbar.OptionSetDescription(p.Unit), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
			}
			_ = w.bar.Set(p.Done)
		} else if line := fmt.Sprintf("%d/%d %s", p.Done, p.Total, p.Unit); line != w.progress {
			w.progress = line
			fmt.Fprintln(w.out, time.Now().Format("15:04:05")+" progress "+line)
		}
	}
	if st.Phase != w.phase {
		w.phase = st.Phase
		line := time.Now().Format("15:04:05") + " phase " + st.Phase
		if m := info(st); m != "" {
			line += ": " + m
		}
		fmt.Fprintln(w.out, line)
	}
	if st.Progress == nil && len(st.Metrics) > 0 {
		if m := formatMetrics(st.Metrics, " "); m != w.metrics {
			w.metrics = m
			fmt.Fprintln(w.out, time.Now().Format("15:04:05")+" metrics "+m)
		}
	}
	switch st.Phase {
	case api.ConditionCompleted:
		return true, nil
	case api.ConditionFailed:
		return true, fmt.Errorf("the job failed: %s", info(st))
	}
	return false, nil
}

// isTerminal reports whether w is a terminal (progress bars only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (w *watcher) event(ev topics.JobEvent) {
	fmt.Fprintf(w.out, "%s %-7s %s %s\n", time.Unix(0, ev.Time).Format("15:04:05"), ev.Type, ev.Reason, ev.Message)
}

// pushProgressFrom is the size from which `model push` shows progress.
const pushProgressFrom = 4 << 20

// pushProgress reads r, saying how far it got on w: a bar on a terminal,
// a line per tenth in a pipe or a file.
func pushProgress(w io.Writer, r io.Reader, size int64, name string) io.Reader {
	if isTerminal(w) {
		bar := progressbar.DefaultBytes(size, "pushing "+name)
		progressbar.OptionSetWriter(w)(bar)
		return io.TeeReader(r, bar)
	}
	return &lineProgress{r: r, w: w, size: size, name: name}
}

// lineProgress writes a line each time another tenth of size is read.
type lineProgress struct {
	r          io.Reader
	w          io.Writer
	size, read int64
	name       string
	tenth      int64
}

func (p *lineProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	if t := p.read * 10 / p.size; t > p.tenth {
		p.tenth = t
		fmt.Fprintf(p.w, "pushing %s: %d of %d bytes (%d%%)\n", p.name, p.read, p.size, p.read*100/p.size)
	}
	return n, err
}

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Manage the model registry",
	}
	var (
		f       controlFlags
		format  string
		metrics []string
	)
	push := &cobra.Command{
		Use:   "push NAME FILE",
		Short: "Upload a new version of a model to the registry; nodes that use it fetch it",
		Long: `Upload FILE as the next version of the Model NAME (created if it does not
exist). The registry keeps every version with its digest; the edge nodes whose
workers use the model fetch the new version in checked chunks and swap it in
whole.`,
		Example: "  sedna model push helmet-detection-inference-little-model little.bin --format pb --metric precision=0.84",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := map[string]string{}
			for _, kv := range metrics {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--metric %q: want key=value", kv)
				}
				m[k] = v
			}
			file, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer file.Close()
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := file.Stat()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout+time.Duration(st.Size()/(64<<10))*time.Second)
			defer cancel()
			var r io.Reader = file
			if st.Size() >= pushProgressFrom {
				r = pushProgress(cmd.ErrOrStderr(), file, st.Size(), args[1])
			}
			res, err := c.PushModel(ctx, f.namespace, args[0], format, m, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", res.Key, res.Action, res.Message)
			return nil
		},
	}
	f.add(push)
	push.Flags().StringVar(&format, "format", "", "the model's format (pb, onnx, sedna-ml, ...)")
	push.Flags().StringArrayVar(&metrics, "metric", nil, "a metric key=value; repeatable")
	cmd.AddCommand(push, newModelInspectCmd(), newModelExportCmd())
	return cmd
}

func newModelInspectCmd() *cobra.Command {
	var decl string
	c := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Say what a model file is and whether the built-in workers can serve it",
		Long: `Read FILE as a built-in worker would: the learning substrate's format, or
ONNX (through ONNX Runtime, in sedna-onnx). With --model, the format and the
declarations (inputs, outputs, preprocess, postprocess) of the Model resource
in that YAML file are applied, so a Model can be checked before it is applied.
Exits 1 with the worker's one-line reason when it cannot be served.`,
		Example: "  sedna model inspect fashion-cnn.onnx\n  sedna-onnx model inspect fashion-cnn.onnx --model fashion-cnn.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var info paradigm.ModelInfo
			if decl != "" {
				rs, err := api.ParseFiles(decl)
				if err != nil {
					return err
				}
				var spec *api.ModelSpec
				for _, r := range rs {
					if s, ok := r.Spec.(*api.ModelSpec); ok {
						if spec != nil {
							return fmt.Errorf("%s: several Models: give a file with one", decl)
						}
						spec = s
						if err := api.Validate(r, api.Admission{}); err != nil {
							return err
						}
					}
				}
				if spec == nil {
					return fmt.Errorf("%s: no Model in it", decl)
				}
				info = paradigm.ModelInfo{Format: spec.Format, IO: spec.ModelIO}
			}
			return inspectModel(cmd.OutOrStdout(), args[0], data, info)
		},
	}
	c.Flags().StringVar(&decl, "model", "", "a YAML file with the Model resource whose format and declarations to apply")
	return c
}

// inspectModel loads data as a built-in worker would and says what it is.
func inspectModel(w io.Writer, name string, data []byte, info paradigm.ModelInfo) error {
	p, err := paradigm.LoadPredictor(data, info)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	switch m := p.(type) {
	case *ml.Network:
		fmt.Fprintf(w, "%s: sedna model, %d bytes: %s %v, %d weights, fitted on %d samples\n", name, len(data), m.Kind(), m.Sizes(), m.NumWeights(), m.Samples())
	case *onnx.Model:
		defer m.Close()
		fmt.Fprintf(w, "%s: ONNX model, %d bytes, served by ONNX Runtime %s\n", name, len(data), onnx.Version())
		ins, outs, err := onnx.Inspect(data, "")
		if err != nil {
			return err
		}
		for _, t := range ins {
			fmt.Fprintf(w, "  input  %s\n", t)
		}
		for _, t := range outs {
			fmt.Fprintf(w, "  output %s\n", t)
		}
		fmt.Fprintf(w, "  served: %s [%d values a sample] -> %s [%d classes]\n", m.Input(), m.Inputs(), m.Output(), m.Classes())
	}
	return nil
}

func newModelExportCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "export FILE --onnx OUT",
		Short: "Write a model of the learning substrate as ONNX",
		Long: `Write FILE, a model of the learning substrate's format, as an ONNX graph
(Gemm, Relu, Softmax; opset 13) to OUT, for any ONNX runtime. Its Model
declares postprocess: none (the graph ends in its own softmax).`,
		Example: "  sedna model export fashion-big.bin --onnx fashion-big.onnx",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--onnx: where to write the ONNX file")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			n, err := ml.Unmarshal(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			b, err := onnx.Export(n)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %v as ONNX, %d bytes (input \"input\", output \"probabilities\")\n", out, n.Kind(), n.Sizes(), len(b))
			return nil
		},
	}
	c.Flags().StringVar(&out, "onnx", "", "the ONNX file to write")
	return c
}
