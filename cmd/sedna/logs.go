package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/cloud"
	"github.com/sedna-go/sedna/topics"
)

func newLogsCmd() *cobra.Command {
	var (
		f      controlFlags
		follow bool
		tail   int
		limit  int64
	)
	cmd := &cobra.Command{
		Use:   "logs KIND NAME [ROLE]",
		Short: "Print a worker's output, streamed from the node it runs on (-f to follow it)",
		Long: `Print the log of one worker of a job: an external worker's stdout and stderr,
a built-in worker's log records. The log stays on the worker's node; the
cloud manager asks the node, which streams it over its link, so a node that
is offline has its workers' logs with it until it returns (the command says
so and exits 1).

A worker is named by its job's kind (fl, ji, il, ll or the full name), the
job's name and the worker's role (train-0, aggregation, edge, cloud, ...; it
may be left out for a job with one worker), or as one word
KIND/[NAMESPACE/]NAME/ROLE, the way 'sedna get nodes' lists workers.

Without -f the command prints the end of the log (at most --limit-bytes,
from the start of a line; --tail for the last lines only) and exits 0; with
-f it goes on printing what the worker writes until Ctrl-C. Standard output
gets the log's bytes as they are; notes (bytes not shown or skipped) go to
standard error.`,
		Example: `  sedna logs fl surface-defect-detection train-0
  sedna logs fl surface-defect-detection train-0 -f --tail 20
  sedna logs FederatedLearningJob/default/surface-defect-detection/aggregation`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := parseWorkerArgs(args, f.namespace)
			if err != nil {
				return err
			}
			o.Follow, o.Lines, o.Bytes, o.Wait = follow, tail, limit, f.timeout
			if limit < 0 || limit > topics.MaxLogBytes {
				return fmt.Errorf("--limit-bytes %d: want at most %d (16 MiB), or 0 for %d (1 MiB)", limit, topics.MaxLogBytes, topics.DefaultLogBytes)
			}
			stderr := cmd.ErrOrStderr()
			o.Notice = func(s string) { fmt.Fprintln(stderr, s) }
			c, ctx, end, err := f.session()
			if err != nil {
				return err
			}
			defer end()
			_, err = c.Logs(ctx, o, cmd.OutOrStdout())
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on printing what the worker writes, until Ctrl-C")
	cmd.Flags().IntVar(&tail, "tail", -1, "print only the last N lines (-1: every line within --limit-bytes)")
	cmd.Flags().Int64Var(&limit, "limit-bytes", 0, fmt.Sprintf("print at most the last N bytes of the log (0: %d MiB, at most %d MiB)", topics.DefaultLogBytes>>20, topics.MaxLogBytes>>20))
	return cmd
}

// parseWorkerArgs reads KIND NAME [ROLE], or one word KIND/NAME/ROLE or
// KIND/NAMESPACE/NAME/ROLE (a worker as `sedna get nodes` lists it).
func parseWorkerArgs(args []string, namespace string) (cloud.LogOptions, error) {
	o := cloud.LogOptions{Namespace: namespace}
	parts := args
	if len(args) == 1 {
		parts = strings.Split(args[0], "/")
	}
	switch {
	case len(args) == 1 && len(parts) == 4:
		o.Kind, o.Namespace, o.Name, o.Role = parts[0], parts[1], parts[2], parts[3]
	case len(parts) == 2 || len(parts) == 3:
		o.Kind, o.Name = parts[0], parts[1]
		if len(parts) == 3 {
			o.Role = parts[2]
		}
	default:
		return o, fmt.Errorf("name a worker: KIND NAME [ROLE], or KIND/[NAMESPACE/]NAME/ROLE (got %q)", strings.Join(args, " "))
	}
	if _, ok := cloud.Resolve(o.Kind); !ok {
		return o, errors.New(api.UnknownKind(o.Kind))
	}
	return o, nil
}
