package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/internal/bench"
	"github.com/sedna-go/sedna/store"
)

func newBenchCmd(g *globals) *cobra.Command {
	var o bench.Options
	var pubs, modes, cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the bridge and the broker side by side with mosquitto",
		Long: `Measure, side by side in one run:

  bridge  edge to cloud, QoS 1: a 'sedna edge' process bridged to the embedded
          cloud broker, for each write mode, against two mosquitto processes
          bridged the same way (mosquitto keeps its bridge queue in memory);
  broker  publishers to one subscriber through one broker, QoS 1: the edge
          broker of 'sedna edge' against mosquitto;
  slow    the same, without and then with one more subscriber (to '#') that
          never reads its socket: the others' throughput with and without it;
  models  model distribution from the cloud registry to a 'sedna edge'
          process against the bridge's raw downlink for the same bytes, 1 MB
          and 64 MB, with the edge's memory, and apply latency;
  ji      joint inference (the classification example) on a 'sedna edge'
          process against the same with EdgeOnly: throughput, latencies and
          bytes up per offloaded frame (with --edge-cpu and taskset, the
          edge and the cloud on cores of their own);
  reconnect  link outages (--outages, drawn from --outage-min..--outage-max)
          between a 'sedna edge' process's bridge and the cloud broker,
          against a mosquitto bridge: from the link's return to the bridge
          connected and the first queued message delivered;

with 1 and 4 publishers, throughput and latency percentiles, and the
resident memory of the 'sedna edge' process idle and under load. mosquitto
comes from Debian's package (make test installs it).`,
		Example: `  sedna bench
  sedna bench --messages 50000 --publishers 1,4 --modes process,sync`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Publishers, err = parseInts(pubs); err != nil {
				return fmt.Errorf("--publishers: %w", err)
			}
			o.Modes = strings.Split(modes, ",")
			for _, m := range o.Modes {
				if _, err := store.ParseMode(m); err != nil {
					return err
				}
			}
			if o.Log, err = g.logger(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-level") {
				o.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelError}))
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			// The bench runs this binary as its 'sedna edge' and 'sedna
			// cloud' processes.
			if o.Sedna, err = os.Executable(); err != nil {
				return err
			}
			o.Version = version
			ctx, stop := untilSignal()
			defer stop()
			return bench.Run(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Messages, "messages", 20000, "messages per run")
	f.IntVar(&o.Size, "size", 256, "payload bytes")
	f.StringVar(&pubs, "publishers", "1,4", "numbers of concurrent publishers")
	f.StringVar(&modes, "modes", "process,sync", "write modes of the sedna store")
	f.IntVar(&o.Window, "window", 64, "messages in flight per publisher")
	f.StringVar(&o.Mosquitto, "mosquitto", "", "mosquitto binary (default: /usr/sbin/mosquitto or $PATH)")
	f.StringVar(&o.Only, "only", "", `run only "bridge", "broker", "slow", "models", "ji", "fl" or "reconnect" (not part of a full run: it takes minutes)`)
	reconnectFlags(cmd, &o.Reconnect)
	f.IntVar(&o.FLClients, "fl-clients", 10, "fl: in-process nodes")
	f.IntVar(&o.FLRounds, "fl-rounds", 30, "fl: rounds of the overhead measure")
	f.IntVar(&o.FLAccuracyRounds, "fl-accuracy-rounds", 100, "fl: rounds of the accuracy runs (Dirichlet alpha 0.1 and 0.5, three seeds)")
	f.IntVar(&o.JIWindow, "ji-window", 1024, "frames in flight from the joint inference bench's camera")
	f.StringVar(&o.CloudCPU, "cloud-cpu", "", "ji: run the cloud as a 'sedna cloud' process pinned to these CPUs (taskset -c), e.g. 1")
	f.StringVar(&o.EdgeCPU, "edge-cpu", "", "pin the sedna edge process to these CPUs (taskset -c), e.g. 0; run the bench itself under taskset -c 1")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (publishers, subscriber, cloud) to this file")
	f.StringVar(&o.EdgeExec, "edge-exec", "", `run the edge with this command instead of this binary, e.g. "qemu-aarch64 bin/sedna-linux-arm64" (its RSS is then the emulator's)`)
	f.StringVar(&o.EdgeMetrics, "edge-metrics", "off", "metrics (and pprof) address of the sedna edge process, for profiling it")
	f.StringVar(&o.EdgeLogLevel, "edge-log-level", "error", "log level of the sedna edge process")
	return cmd
}

// reconnectFlags registers the flags of the reconnect bench, into o.
func reconnectFlags(cmd *cobra.Command, o *bench.ReconnectOptions) {
	f := cmd.Flags()
	f.IntVar(&o.Outages, "outages", 20, "reconnect: link outages")
	f.DurationVar(&o.Shortest, "outage-min", time.Second, "reconnect: shortest outage")
	f.DurationVar(&o.Longest, "outage-max", 30*time.Second, "reconnect: longest outage")
	f.Uint64Var(&o.Seed, "outage-seed", 1, "reconnect: seed of the outages' durations (uniform between the two bounds)")
	f.DurationVar(&o.Deadline, "reconnect-deadline", 90*time.Second, "reconnect: give up on a bridge this long after its link returned")
	f.StringVar(&o.MosquittoRestart, "mosquitto-restart-timeout", "1", `reconnect: mosquitto bridge's restart_timeout ("1": constant 1 s; "BASE CAP": decorrelated jitter)`)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", p)
		}
		out = append(out, n)
	}
	return out, nil
}
