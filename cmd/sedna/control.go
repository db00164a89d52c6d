package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/broker"
	"github.com/sedna-go/sedna/cloud"
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
	cmd.Flags().StringVar(&f.url, "cloud", "", "the cloud broker (env SEDNA_CLOUD_URL; default tcp://127.0.0.1:1884)")
	cmd.Flags().StringVar(&f.username, "username", "", "user of the cloud broker: role operator, viewer or admin (env SEDNA_USERNAME)")
	cmd.Flags().StringVar(&f.password, "password", "", "its password (env SEDNA_PASSWORD; better --password-file: every user of the host sees a command line)")
	cmd.Flags().StringVar(&f.passwordFile, "password-file", "", "read the password from a file")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the cloud manager")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (f *controlFlags) dial() (*cloud.Client, error) {
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
			return nil, err
		}
		f.password = strings.TrimRight(string(b), "\r\n")
	}
	return cloud.Dial(broker.ClientConfig{URL: f.url, Username: f.username, Password: f.password})
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
		f     controlFlags
		files []string
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Create or update resources from Sedna-format YAML and wait for the cloud manager to admit them",
		Long: `Apply Sedna resources (apiVersion sedna.io/v1alpha1: Dataset, Model,
JointInferenceService, IncrementalLearningJob, FederatedLearningJob,
LifelongLearningJob) from files or directories of multi-document YAML. The
cloud manager validates each one; a refused document is reported with the
field at fault, and the command exits non-zero. References to resources or
nodes that do not exist yet are accepted and shown as pending.`,
		Example: "  sedna apply -f examples/sedna/\n  sedna apply -f job.yaml -f datasets.yaml --cloud tcp://cloud:1884 --username ops --password-file ops.pw",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("no file: give -f FILE|DIR")
			}
			rs, err := api.ParseFiles(files...)
			if err != nil {
				return err
			}
			if len(rs) == 0 {
				return fmt.Errorf("no resource in %s", strings.Join(files, ", "))
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			rep, err := c.Apply(ctx, rs)
			if err != nil {
				return err
			}
			rejected := 0
			for _, r := range rep.Results {
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
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of YAML; repeatable")
	return cmd
}

func decodeStatus(o topics.APIObject) api.Status {
	var st api.Status
	_ = json.Unmarshal(o.Status, &st)
	return st
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
	)
	cmd := &cobra.Command{
		Use:     "get KIND [NAME]",
		Short:   "List resources of a kind (or all) with their phase",
		Example: "  sedna get all\n  sedna get datasets\n  sedna get fl surface-defect-detection -o yaml",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := topics.APIRequest{Op: "get", Kind: args[0], Namespace: f.namespace}
			if len(args) == 2 {
				req.Name = args[1]
			}
			if args[0] == "all" {
				req.Namespace = ""
			}
			rep, err := f.do(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printObjects(cmd.OutOrStdout(), rep.Objects, output)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml: the documents with their status")
	return cmd
}

func printObjects(w io.Writer, objs []topics.APIObject, output string) error {
	switch output {
	case "json", "yaml":
		var list []map[string]any
		for _, o := range objs {
			var doc map[string]any
			_ = json.Unmarshal(o.Source, &doc)
			var st any
			_ = json.Unmarshal(o.Status, &st)
			doc["status"] = st
			list = append(list, doc)
		}
		var out []byte
		var err error
		if output == "json" {
			out, err = json.MarshalIndent(list, "", "  ")
		} else {
			out, err = yaml.Marshal(list)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(out))
		return err
	case "":
	default:
		return fmt.Errorf("-o %q: want json or yaml", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tPHASE\tGEN\tAGE\tINFO")
	for _, o := range objs {
		parts := strings.SplitN(o.Key, "/", 3)
		st := decodeStatus(o)
		info := ""
		switch {
		case st.NumberOfSamples != nil:
			info = fmt.Sprintf("samples=%d", *st.NumberOfSamples)
		case st.Progress != nil:
			info = fmt.Sprintf("%d/%d %s", st.Progress.Done, st.Progress.Total, st.Progress.Unit)
		case len(st.Pending) > 0:
			info = "waiting for " + strings.Join(st.Pending, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", parts[0], parts[1], parts[2], st.Phase, o.Generation, age(o.Created), info)
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
	st := decodeStatus(o)
	fmt.Fprintf(w, "Name:        %s\nNamespace:   %s\nKind:        %s\nGeneration:  %d\nCreated:     %s (%s ago)\nPhase:       %s\n",
		parts[2], parts[1], parts[0], o.Generation, time.Unix(0, o.Created).UTC().Format(time.RFC3339), age(o.Created), st.Phase)
	if st.NumberOfSamples != nil {
		fmt.Fprintf(w, "Samples:     %d\n", *st.NumberOfSamples)
	}
	if st.Progress != nil {
		fmt.Fprintf(w, "Progress:    %d/%d %s\n", st.Progress.Done, st.Progress.Total, st.Progress.Unit)
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
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.LastTransitionTime.UTC().Format(time.RFC3339), c.Message)
		}
		tw.Flush()
	}
	if len(st.Workers) > 0 {
		fmt.Fprintln(w, "Workers:")
		fmt.Fprintln(tw, "  ROLE\tNODE\tPHASE\tRESTARTS\tEXIT\tMESSAGE")
		for _, wk := range st.Workers {
			exit := "-"
			if wk.ExitCode != nil {
				exit = fmt.Sprint(*wk.ExitCode)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", wk.Role, wk.Node, wk.Phase, wk.Restarts, exit, wk.Message)
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
	var f controlFlags
	cmd := &cobra.Command{
		Use:     "delete KIND NAME",
		Short:   "Delete a resource; its workers stop on every node, offline ones when they return",
		Example: "  sedna delete fl surface-defect-detection",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := f.do(cmd.Context(), topics.APIRequest{Op: "delete", Kind: args[0], Name: args[1], Namespace: f.namespace})
			if err != nil {
				return err
			}
			for _, r := range rep.Results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", r.Key, r.Action)
			}
			return nil
		},
	}
	f.add(cmd)
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
				return fmt.Errorf("unknown kind %q (known: %s)", args[0], strings.Join(api.Kinds, ", "))
			}
			ref := topics.JobRef{Kind: kind, Namespace: f.namespace, Name: args[1]}
			if err := ref.Validate(); err != nil {
				return err
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := untilSignal()
			defer stop()
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
			w := &watcher{out: out}
			end := make(chan error, 1)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				_ = c.Watch(ctx, ref, func(st api.Status) {
					if done, err := w.status(st); done {
						select {
						case end <- err:
						default:
						}
						cancel()
					}
				}, w.event)
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

// watcher prints what a watch sees; callbacks come one at a time.
type watcher struct {
	out     io.Writer
	bar     *progressbar.ProgressBar
	phase   string
	metrics string
}

func (w *watcher) status(st api.Status) (bool, error) {
	if st.Progress != nil && st.Progress.Total > 0 {
		if w.bar == nil {
			w.bar = progressbar.NewOptions(st.Progress.Total, progressbar.OptionSetWriter(w.out),
				progressbar.OptionSetDescription(st.Progress.Unit), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
		}
		_ = w.bar.Set(st.Progress.Done)
	}
	if st.Phase != w.phase {
		w.phase = st.Phase
		line := time.Now().Format("15:04:05") + " phase " + st.Phase
		if len(st.Pending) > 0 {
			line += ": waiting for " + strings.Join(st.Pending, ", ")
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
		return true, fmt.Errorf("the job failed")
	}
	return false, nil
}

func (w *watcher) event(ev topics.JobEvent) {
	fmt.Fprintf(w.out, "%s %-7s %s %s\n", time.Unix(0, ev.Time).Format("15:04:05"), ev.Type, ev.Reason, ev.Message)
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
			st, _ := file.Stat()
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout+time.Duration(st.Size()/(64<<10))*time.Second)
			defer cancel()
			res, err := c.PushModel(ctx, f.namespace, args[0], format, m, file)
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
	cmd.AddCommand(push)
	return cmd
}
