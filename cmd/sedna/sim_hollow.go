package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
		consumer, consumerPWFile  string
		nodes, messages, rate     int
		first                     int
		pids                      []int
		timeout, hold             time.Duration
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
the CPU time it spent, per 1,000 nodes.

With --consumer USER (its password in --consumer-password-file or
SEDNA_CONSUMER_PASSWORD) a cloud consumer with a persistent session, started
before the nodes, counts what reaches the cloud: the command then waits
until every acknowledged message was consumed and fails if one is missing
or came twice.

With --hold D the nodes then stay connected, idle (keepalives, status
requests), for D, and the command reports what the cloud tier spent on
them meanwhile.`,
		Example: `  sedna sim hollow --cloud tcp://127.0.0.1:21001,tcp://127.0.0.1:21002 --nodes 10000 --messages 10 \
    --password-file pw --pid $(pgrep -d, -f 'beam.smp|sedna cloud')`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			pw, err := secretOf(passwordFile, "SEDNA_PASSWORD")
			if err != nil {
				return err
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
			before, err := usages(pids)
			if err != nil {
				return err
			}
			self0, _ := hollow.ProcUsage(os.Getpid())
			ctx, stop := untilSignal()
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var tally *hollowTally
			if consumer != "" {
				cpw, err := secretOf(consumerPWFile, "SEDNA_CONSUMER_PASSWORD")
				if err != nil {
					return err
				}
				if tally, err = startHollowTally(url, consumer, cpw, names, messages, log); err != nil {
					return err
				}
				defer tally.close()
			}
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
			if tally != nil {
				once, dups, err := tally.wait(ctx)
				fmt.Fprintf(out, "consumed in the cloud %v after the first was sent: %d of %d once, %d missing, %d duplicated\n",
					time.Since(sent).Round(time.Millisecond), once, nodes*messages, nodes*messages-once, dups)
				if err != nil {
					return err
				}
				if dups > 0 {
					return fmt.Errorf("%d messages consumed twice", dups)
				}
			}
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
			if hold > 0 {
				return holdIdle(ctx, out, fleet, pids, hold, per)
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
	f.StringVar(&consumer, "consumer", "", "count what reaches the cloud with a consumer of this user (an operator's)")
	f.StringVar(&consumerPWFile, "consumer-password-file", "", "the consumer's password (or env SEDNA_CONSUMER_PASSWORD)")
	f.IntSliceVar(&pids, "pid", nil, "a process of the cloud tier to measure, repeatable or comma-separated")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	f.DurationVar(&hold, "hold", 0, "then keep the nodes connected and idle this long, and report what the cloud tier spent on them")
	_ = cmd.MarkFlagRequired("cloud")
	return cmd
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// holdIdle keeps the fleet connected for d and reports the CPU the cloud
// tier's processes spent on it meanwhile, per 1,000 nodes (per = nodes /
// 1,000), and their memory at the end.
func holdIdle(ctx context.Context, out io.Writer, fleet *hollow.Fleet, pids []int, d time.Duration, per float64) error {
	before, err := usages(pids)
	if err != nil {
		return err
	}
	s0 := fleet.Stats()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	var cpu float64
	var rss int64
	for _, p := range pids {
		u, err := hollow.ProcUsage(p)
		if err != nil {
			return fmt.Errorf("--pid %d: %w", p, err)
		}
		cpu, rss = cpu+u.CPU-before[p].CPU, rss+u.RSS
	}
	s := fleet.Stats()
	fmt.Fprintf(out, "held %d nodes idle for %v: %d reconnections, %d status requests answered; the cloud tier: %.1f s CPU (%.2f%% of a core per 1,000 nodes), %.1f MB resident\n",
		len(fleet.Nodes()), d, s.Connects-s0.Connects, s.StatusAsks-s0.StatusAsks, cpu, 100*cpu/d.Seconds()/per, mb(rss))
	return nil
}

// secretOf reads a password from file (its first line), or else from the
// environment variable env.
func secretOf(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// usages reads what each process of pids has used so far.
func usages(pids []int) (map[int]hollow.Usage, error) {
	u := make(map[int]hollow.Usage, len(pids))
	for _, p := range pids {
		v, err := hollow.ProcUsage(p)
		if err != nil {
			return nil, fmt.Errorf("--pid %d: %w", p, err)
		}
		u[p] = v
	}
	return u, nil
}
