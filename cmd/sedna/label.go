package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/incremental"
	"github.com/sedna-go/sedna/topics"
)

func newLabelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "label",
		Short: "List a learning job's hard examples that wait for a label, and label them",
		Long: `A learning job's hard examples (mined at the edge, sent up in the background)
wait in the cloud for a label; each label moves its example into the job's
train or eval set (spec.dataset.trainProb), and the labelled count is what
the job's num_of_samples trigger counts.

'sedna label list' shows what waits (KEY, the device's ID, the node, the
shape, the model version that found it hard); -o json gives the examples
with their data for a labelling tool, --save DIR writes each as a file.
'sedna label set' takes labels as lines "KEY CLASS" (or "KEY,CLASS"; # starts
a comment) or as a JSON list [{"key": ..., "label": ...}], from a file or
standard input; a detection job's labels are the scenes' objects, in JSON:
[{"key": ..., "boxes": [[xmin, ymin, xmax, ymax, 1, class], ...]}].

A tool may also publish each label itself, unretained, on the job's label
topic (sedna/v1/job/IncrementalLearningJob/NAMESPACE/NAME/label) as JSON
{"key": "edge1/17", "label": 3}: a user of role operator may.

A LifelongLearningJob's samples of unseen tasks wait the same way:
--kind ll (LifelongLearningJob) names one.`,
	}
	cmd.AddCommand(newLabelListCmd(), newLabelSetCmd())
	return cmd
}

// labelJob names a learning job of kind: IncrementalLearningJob (il,
// incremental) or LifelongLearningJob (ll, lifelong), whose unseen
// samples wait for labels as hard examples do.
func labelJob(kind, name, namespace string) (topics.APIRequest, error) {
	switch strings.ToLower(kind) {
	case "", "il", "incremental", strings.ToLower(api.KindIncrementalLearningJob):
		kind = api.KindIncrementalLearningJob
	case "ll", "lifelong", strings.ToLower(api.KindLifelongLearningJob):
		kind = api.KindLifelongLearningJob
	default:
		return topics.APIRequest{}, fmt.Errorf("--kind %s: want IncrementalLearningJob (il) or LifelongLearningJob (ll)", kind)
	}
	return topics.APIRequest{Kind: kind, Name: name, Namespace: namespace}, nil
}

func newLabelListCmd() *cobra.Command {
	var (
		f      controlFlags
		kind   string
		limit  int
		all    bool
		output string
		save   string
	)
	cmd := &cobra.Command{
		Use:   "list JOB",
		Short: "List the hard examples of an IncrementalLearningJob that wait for a label",
		Example: `  sedna label list helmet-detection-demo
  sedna label list helmet-detection-demo --all -o json > waiting.json
  sedna label list helmet-detection-demo --save ./to-label`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %s: want table or json", output)
			}
			job, err := labelJob(kind, args[0], f.namespace)
			if err != nil {
				return err
			}
			c, ctx, end, err := f.session()
			if err != nil {
				return err
			}
			defer end()
			var list incremental.WaitingList
			req := incremental.WaitingRequest{Limit: limit}
			for {
				page, err := waitingPage(ctx, c, f.timeout, job, req)
				if err != nil {
					return err
				}
				list.Total = page.Total
				list.Examples = append(list.Examples, page.Examples...)
				list.More = page.More
				if !all || !page.More || len(page.Examples) == 0 {
					break
				}
				req.After = page.Examples[len(page.Examples)-1].Key
			}
			if save != "" {
				if err := saveExamples(save, list.Examples); err != nil {
					return err
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			return printWaiting(cmd.OutOrStdout(), list)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&kind, "kind", "k", api.KindIncrementalLearningJob, "the job's kind: IncrementalLearningJob (il) or LifelongLearningJob (ll)")
	cmd.Flags().IntVar(&limit, "limit", incremental.DefaultWaitingLimit, "how many to list (a page, with --all)")
	cmd.Flags().BoolVar(&all, "all", false, "list every waiting example, a page at a time")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json (with each example's data, base64)")
	cmd.Flags().StringVar(&save, "save", "", "write each example's data to DIR/KEY.bin (KEY's / as _) and its metadata to DIR/KEY.json")
	return cmd
}

// jobOp asks the control plane for an operation a paradigm serves about
// a job: in and out are its body and answer, as JSON.
func jobOp(ctx context.Context, c *cloud.Client, timeout time.Duration, job topics.APIRequest, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	job.Op, job.Body = op, body
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := c.Do(ctx, job)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(rep.Body, out); err != nil {
		return fmt.Errorf("the cloud's answer to %s: %w", op, err)
	}
	return nil
}

// waitingPage asks for one page of the waiting examples.
func waitingPage(ctx context.Context, c *cloud.Client, timeout time.Duration, job topics.APIRequest, wr incremental.WaitingRequest) (incremental.WaitingList, error) {
	var l incremental.WaitingList
	err := jobOp(ctx, c, timeout, job, incremental.OpWaiting, wr, &l)
	return l, err
}

func printWaiting(w io.Writer, l incremental.WaitingList) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tID\tNODE\tSHAPE\tDTYPE\tBYTES\tMODEL")
	for _, e := range l.Examples {
		shape := make([]string, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = strconv.Itoa(d)
		}
		id := e.ID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\tv%d\n", e.Key, id, e.Node, strings.Join(shape, "x"), e.DType, len(e.Data), e.Model)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	more := ""
	if l.More {
		more = " (--all for every one)"
	}
	_, err := fmt.Fprintf(w, "%d of %d waiting listed%s\n", len(l.Examples), l.Total, more)
	return err
}

// saveExamples writes each example's data and its metadata to dir.
func saveExamples(dir string, es []incremental.WaitingExample) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range es {
		base := filepath.Join(dir, strings.ReplaceAll(e.Key, "/", "_"))
		if err := os.WriteFile(base+".bin", e.Data, 0o644); err != nil {
			return err
		}
		meta := e
		meta.Data = nil
		b, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func newLabelSetCmd() *cobra.Command {
	var (
		f    controlFlags
		kind string
		file string
	)
	cmd := &cobra.Command{
		Use:   "set JOB [-f FILE]",
		Short: "Label waiting hard examples: lines \"KEY CLASS\" or a JSON list, from a file or standard input",
		Example: `  echo "edge1/17 3" | sedna label set helmet-detection-demo
  sedna label set helmet-detection-demo -f labels.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := cmd.InOrStdin()
			if file != "" && file != "-" {
				fh, err := os.Open(file)
				if err != nil {
					return err
				}
				defer fh.Close()
				in = fh
			}
			labels, err := parseLabels(in)
			if err != nil {
				return err
			}
			if len(labels) == 0 {
				return errors.New("no labels given")
			}
			job, err := labelJob(kind, args[0], f.namespace)
			if err != nil {
				return err
			}
			c, ctx, end, err := f.session()
			if err != nil {
				return err
			}
			defer end()
			var total incremental.LabelResult
			for start := 0; start < len(labels); start += labelsPerRequest {
				batch := labels[start:min(start+labelsPerRequest, len(labels))]
				res, err := setLabels(ctx, c, f.timeout, job, batch)
				if err != nil {
					return fmt.Errorf("%w (%d labels taken before)", err, total.Labelled)
				}
				total.Labelled += res.Labelled
				total.NotWaiting = append(total.NotWaiting, res.NotWaiting...)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d labelled\n", total.Labelled)
			if n := len(total.NotWaiting); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d not waiting (labelled before, or never seen): %s\n", n, strings.Join(total.NotWaiting, " "))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&kind, "kind", "k", api.KindIncrementalLearningJob, "the job's kind: IncrementalLearningJob (il) or LifelongLearningJob (ll)")
	cmd.Flags().StringVarP(&file, "file", "f", "-", "the labels (- for standard input)")
	return cmd
}

// labelsPerRequest keeps a request of labels well within a message.
const labelsPerRequest = 2000

func setLabels(ctx context.Context, c *cloud.Client, timeout time.Duration, job topics.APIRequest, ls []incremental.Label) (incremental.LabelResult, error) {
	var res incremental.LabelResult
	err := jobOp(ctx, c, timeout, job, incremental.OpLabel, ls, &res)
	return res, err
}

// parseLabels reads labels as a JSON list of {"key", "label"}, or as
// lines "KEY CLASS" or "KEY,CLASS" (blank lines and # comments skipped).
func parseLabels(r io.Reader) ([]incremental.Label, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		var ls []incremental.Label
		if err := json.Unmarshal(t, &ls); err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		for i, l := range ls {
			if l.Key == "" || l.Label < 0 {
				return nil, fmt.Errorf("label %d: want a key and a class that is not negative, got %+v", i+1, l)
			}
		}
		return ls, nil
	}
	var ls []incremental.Label
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: %q: want KEY CLASS", n, strings.TrimSpace(line))
		}
		class, err := strconv.Atoi(fields[1])
		if err != nil || class < 0 {
			return nil, fmt.Errorf("line %d: class %q: want a number, 0 or more", n, fields[1])
		}
		ls = append(ls, incremental.Label{Key: fields[0], Label: class})
	}
	return ls, sc.Err()
}
