package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/api"
	"github.com/sedna-go/sedna/lifelong"
	"github.com/sedna-go/sedna/topics"
)

func newKBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kb",
		Short: "Look at the knowledge bases of lifelong learning jobs",
		Long: `A LifelongLearningJob keeps a knowledge base: its tasks, a model per task,
and how a sample is recognised as of a task or of none yet (unseen). Each
deploy registers it as a version of the Model JOB-kb.

'sedna kb list' lists the lifelong jobs with their knowledge base as their
status shows it; 'sedna kb describe JOB' asks the cloud for the deployed
knowledge base's tasks: attribute, samples learnt from, held-out accuracy,
clusters in the recognition mixture.`,
	}
	cmd.AddCommand(newKBListCmd(), newKBDescribeCmd())
	return cmd
}

func newKBListCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the lifelong jobs and their knowledge bases",
		Example: "  sedna kb list\n  sedna kb list -n fleet",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := f.do(cmd.Context(), topics.APIRequest{Op: "get", Kind: api.KindLifelongLearningJob, Namespace: f.namespace})
			if err != nil {
				return err
			}
			return printKBList(cmd.OutOrStdout(), rep.Objects)
		},
	}
	f.add(cmd)
	return cmd
}

func printKBList(w io.Writer, objs []topics.APIObject) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tPHASE\tKB VERSION\tTASKS\tCLASSES\tUNSEEN LABELLED\tUNSEEN WAITING")
	for _, o := range objs {
		var st api.Status
		if err := json.Unmarshal(o.Status, &st); err != nil {
			return fmt.Errorf("%s: its status: %w", o.Key, err)
		}
		name := o.Key[strings.LastIndex(o.Key, "/")+1:]
		kb := st.KnowledgeBase
		if kb == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\n", name, st.Phase)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", name, st.Phase, kb.Version, kb.AIModels.NumberOfAIModels, kb.AIClasses.NumberOfAIClasses,
			kb.Samples.NumberOfLabeledUnseenSample, kb.Samples.NumberOfUnseenSample)
	}
	return tw.Flush()
}

func newKBDescribeCmd() *cobra.Command {
	var (
		f      controlFlags
		output string
	)
	cmd := &cobra.Command{
		Use:     "describe JOB",
		Short:   "Show the tasks of a lifelong job's deployed knowledge base",
		Example: "  sedna kb describe atcii-classifier-demo\n  sedna kb describe atcii-classifier-demo -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %s: want table or json", output)
			}
			c, err := f.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var s lifelong.Summary
			job := topics.APIRequest{Kind: api.KindLifelongLearningJob, Name: args[0], Namespace: f.namespace}
			if err := jobOp(context.Background(), c, f.timeout, job, lifelong.OpKB, struct{}{}, &s); err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			return printKB(cmd.OutOrStdout(), s)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func printKB(w io.Writer, s lifelong.Summary) error {
	fmt.Fprintf(w, "Job:        %s\nModel:      %s version %d\nTasks by:   %s\nMaps:       %d features to %d classes\n",
		s.Job, s.Model, s.Version, s.Method, s.Features, s.Classes)
	if s.Method == lifelong.ByCluster {
		fmt.Fprintf(w, "Unseen:     a window of %d samples of a stream with a mean log density below %.3f\n", s.Window, s.Threshold)
	} else {
		fmt.Fprintf(w, "Unseen:     a sample of an attribute with no task\n")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tATTRIBUTE\tSAMPLES\tHELD OUT\tACCURACY\tCLUSTERS")
	for _, t := range s.Tasks {
		acc := "-"
		if t.Accuracy != nil {
			acc = fmt.Sprintf("%.3f", *t.Accuracy)
		}
		attr := t.Attr
		if attr == "" {
			attr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\n", t.ID, attr, t.Samples, t.Total-t.Samples, acc, t.Clusters)
	}
	return tw.Flush()
}
