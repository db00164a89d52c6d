package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/simulator/hollow"
	"github.com/sedna-go/sedna/topics"
)

func newSimHollowCmd(g *globals) *cobra.Command {
	var (
		url, prefix, passwordFile string
		nodes, messages, rate     int
		first                     int
		pids                      []int
		timeout                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "hollow",
		Short: "Run thousands of hollow nodes (the bridge's protocol, no agent or store) against a cloud broker",
		Long: `Run hollow nodes: light edge nodes that speak the bridge's protocol to the
cloud broker (frames up, acknowledged and sent again until they are; status,
will and answers to the cloud's status requests; downlink frames
deduplicated and acknowledged) without an edge broker, a store or an agent
each, one connection apiece. Each node, named PREFIX-0000 and up, logs in as
itself with the password of --password-file (or SEDNA_PASSWORD): the cloud
broker must know them (docs/SCALE.md says how on RabbitMQ).

The command connects them all (--rate a second), has each send --messages
messages to its sedna/v1/node/NAME/app/hollow topic, waits until the cloud
acknowledged every one, and reports: how long each step took, what this
process used per 1,000 nodes, and, for each --pid (the cloud tier's
processes: RabbitMQ's, the cloud manager's), its memory before and after and
the CPU time it spent, per 1,000 nodes.`,
		Example: `  sedna sim hollow --cloud tcp://127.0.0.1:21001,tcp://127.0.0.1:21002 --nodes 10000 --messages 10 \
    --password-file pw --pid $(pgrep -d, -f 'beam.smp|sedna cloud')`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			pw := os.Getenv("SEDNA_PASSWORD")
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return err
				}
				pw = strings.TrimRight(string(b), "\r\n")
			}
			if pw == "" {
				return errors.New("no password: --password-file or SEDNA_PASSWORD")
			}
			if nodes <= 0 {
				return errors.New("--nodes must be positive")
			}
			names := make([]string, nodes)
			for i := range names {
				names[i] = fmt.Sprintf("%s-%04d", prefix, first+i)
			}
			out := cmd.OutOrStdout()
			before := map[int]hollow.Usage{}
			for _, p := range pids {
				u, err := hollow.ProcUsage(p)
				if err != nil {
					return fmt.Errorf("--pid %d: %w", p, err)
				}
				before[p] = u
			}
			self0, _ := hollow.ProcUsage(os.Getpid())
			ctx, stop := untilSignal()
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			fleet, err := hollow.Start(hollow.Config{URL: url, Nodes: names, Password: func(string) string { return pw },
				ConnectRate: rate, Logger: log})
			if err != nil {
				return err
			}
			defer fleet.Close()
			if err := fleet.Wait(ctx); err != nil {
				return err
			}
			connected := time.Since(start)
			fmt.Fprintf(out, "%d hollow nodes connected in %v (%.0f a second)\n", nodes, connected.Round(time.Millisecond),
				float64(nodes)/connected.Seconds())
			sent := time.Now()
			for i, n := range fleet.Nodes() {
				for j := range messages {
					var b [16]byte
					binary.BigEndian.PutUint64(b[:8], uint64(i))
					binary.BigEndian.PutUint64(b[8:], uint64(j))
					n.Send(topics.NodeApp(n.Name(), "hollow"), b[:])
				}
			}
			if err := fleet.Settled(ctx); err != nil {
				return err
			}
			took := time.Since(sent)
			s := fleet.Stats()
			fmt.Fprintf(out, "%d messages acknowledged by the cloud in %v (%.0f a second); %d frames, %d connections, %d failed attempts, %d status requests answered\n",
				s.Acked, took.Round(time.Millisecond), float64(s.Acked)/took.Seconds(), s.Frames, s.Connects, s.Failures, s.StatusAsks)
			per := float64(nodes) / 1000
			runtime.GC()
			self, _ := hollow.ProcUsage(os.Getpid())
			fmt.Fprintf(out, "this process: %.1f MB resident (%.1f MB per 1,000 nodes), %.1f s CPU, %d threads\n",
				mb(self.RSS), mb(self.RSS-self0.RSS)/per, self.CPU-self0.CPU, self.Thread)
			var rss0, rss1 int64
			var cpu float64
			for _, p := range pids {
				u, err := hollow.ProcUsage(p)
				if err != nil {
					return fmt.Errorf("--pid %d: %w", p, err)
				}
				b := before[p]
				comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/comm")
				fmt.Fprintf(out, "pid %d (%s): %.1f MB resident (%.1f before), %.1f s CPU during the run\n",
					p, strings.TrimSpace(string(comm)), mb(u.RSS), mb(b.RSS), u.CPU-b.CPU)
				rss0, rss1, cpu = rss0+b.RSS, rss1+u.RSS, cpu+u.CPU-b.CPU
			}
			if len(pids) > 0 {
				fmt.Fprintf(out, "the cloud tier (%d processes): %.1f MB resident (%.1f MB more per 1,000 nodes), %.1f s CPU (%.2f s per 1,000 nodes)\n",
					len(pids), mb(rss1), mb(rss1-rss0)/per, cpu, cpu/per)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "cloud", "", "the cloud broker, or a cluster's nodes separated by commas")
	f.StringVar(&prefix, "prefix", "hollow", "the nodes' names: PREFIX-0000 and up")
	f.IntVar(&first, "first", 0, "the number of the first node")
	f.IntVar(&nodes, "nodes", 1000, "how many nodes")
	f.IntVar(&messages, "messages", 10, "messages each node sends")
	f.IntVar(&rate, "rate", 500, "new connections a second")
	f.StringVar(&passwordFile, "password-file", "", "the nodes' password (or env SEDNA_PASSWORD)")
	f.IntSliceVar(&pids, "pid", nil, "a process of the cloud tier to measure, repeatable or comma-separated")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	_ = cmd.MarkFlagRequired("cloud")
	return cmd
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
