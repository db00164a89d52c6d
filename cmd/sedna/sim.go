package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/simulator"
)

func newSimCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run fleets of virtual edge nodes and devices against the real system",
	}
	var (
		seed     uint64
		report   string
		dir      string
		binaries []string
	)
	run := &cobra.Command{
		Use:   "run SCENARIO.yaml",
		Short: "Run a scenario: nodes, devices, a timeline of faults; report and check its expectations",
		Long: `Run a scenario file: a cloud manager and a fleet of edge nodes (in-process
agents, or 'sedna edge' processes where a kill must be real) behind
fault-injecting links, devices publishing at their rates, the faults of its
timeline, then a drain. A plain MQTT subscriber of the simulator's own counts
what arrives. The report (a summary here, JSON with --report) says, per node
and in total, what was published, acknowledged, delivered, lost and
duplicated, with latency percentiles; the command exits non-zero when an
expectation of the scenario fails, and says which.`,
		Example: "  sedna sim run examples/scenarios/flapping-fleet.yaml --report report.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			s, err := simulator.Load(args[0])
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("seed") {
				s.Seed = seed
			}
			ctx, stop := untilSignal()
			defer stop()
			bins := map[string]string{}
			for _, b := range binaries {
				arch, path, ok := strings.Cut(b, "=")
				if _, known := simulator.Emulators[arch]; !ok || !known || path == "" {
					return fmt.Errorf("--bin %s: want ARCH=PATH, ARCH arm64 or armv7", b)
				}
				bins[arch] = path
			}
			rep, err := simulator.Run(ctx, s, simulator.Options{Dir: dir, Log: log, Binaries: bins})
			if err != nil {
				return err
			}
			rep.WriteSummary(cmd.OutOrStdout())
			if report != "" {
				f, err := os.Create(report)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := rep.WriteJSON(f); err != nil {
					return err
				}
			}
			if !rep.OK() {
				return fmt.Errorf("scenario %s: %d expectation(s) failed", s.Name, len(rep.Failures))
			}
			return nil
		},
	}
	run.Flags().Uint64Var(&seed, "seed", 0, "override the scenario's seed")
	run.Flags().StringArrayVar(&binaries, "bin", nil, "the sedna binary of an emulated node's architecture: arm64=PATH, armv7=PATH (make cross builds bin/sedna-linux-ARCH)")
	run.Flags().StringVar(&report, "report", "", "write the report as JSON to this file")
	run.Flags().StringVar(&dir, "dir", "", "keep the run's stores here (default: a temporary directory, removed)")
	cmd.AddCommand(run, newSimHollowCmd(g))
	return cmd
}
