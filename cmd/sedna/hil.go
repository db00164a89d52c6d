package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/hil"
	"github.com/sedna-go/sedna/simulator"
)

// hilFlags are the flags every `sedna hil` command shares.
type hilFlags struct {
	inventory string
	trustNew  bool
	boards    []string
}

func (f *hilFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.inventory, "inventory", "", "the boards: a YAML file (name, arch, address, user, keyFile, knownHosts, dataDir)")
	cmd.Flags().BoolVar(&f.trustNew, "trust-new-host-key", false, "add the host key of a board known_hosts has no key of (never one that changed)")
	cmd.Flags().StringSliceVar(&f.boards, "board", nil, "only these boards (default all)")
	_ = cmd.MarkFlagRequired("inventory")
}

// selected are the inventory's boards the flags name.
func (f *hilFlags) selected() ([]*hil.Board, error) {
	inv, err := hil.LoadInventory(f.inventory)
	if err != nil {
		return nil, err
	}
	var out []*hil.Board
	if len(f.boards) == 0 {
		for i := range inv.Boards {
			out = append(out, &inv.Boards[i])
		}
		return out, nil
	}
	for _, name := range f.boards {
		b, ok := inv.Board(name)
		if !ok {
			return nil, fmt.Errorf("--board %s: not in %s", name, f.inventory)
		}
		out = append(out, b)
	}
	return out, nil
}

func newHILCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hil",
		Short: "Hardware in the loop: deploy the edge agent to ARM boards over SSH, and remove it",
		Long: `The boards of an inventory file become edge nodes: 'sedna hil deploy' copies
the sedna binary of each board's architecture over SSH (SFTP, checked by its
SHA-256 on the board), writes its password and starts its edge agent (a
systemd unit where the board runs systemd and the user is root, otherwise a
supervisor script that restarts it), and waits until it is ready; 'sedna hil
clean' stops it and removes its directory. Host keys are always checked
against each board's known_hosts: a new one is added only with
--trust-new-host-key, a changed one is refused. A board with an emulator
(qemu-arm, qemu-aarch64) runs its binary under it: an emulated board.

Inventory:
  boards:
    - name: pi-1
      arch: armv7            # arm64, armv7 or amd64
      address: 192.168.1.21:22
      user: pi
      keyFile: keys/id_ed25519
      knownHosts: keys/known_hosts
      dataDir: /home/pi/sedna
      memoryMiB: 256         # optional limits
      cpuPercent: 50`,
	}
	cmd.AddCommand(newHILDeployCmd(), newHILRunCmd(), newHILReportCmd(), newHILCleanCmd())
	return cmd
}

func newHILDeployCmd() *cobra.Command {
	var (
		f            hilFlags
		bins         []string
		cloudURL     string
		passwordFile string
		listen       string
	)
	cmd := &cobra.Command{
		Use:   "deploy --inventory FILE --cloud URL --password-file FILE",
		Short: "Copy the agent to each board, start it and wait until it is ready",
		Example: `  make cross
  sedna hil deploy --inventory boards.yaml --cloud tcp://10.0.0.2:1884 --password-file pw.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			boards, err := f.selected()
			if err != nil {
				return err
			}
			if cloudURL == "" || passwordFile == "" {
				return errors.New("give --cloud (the cloud broker as the boards reach it) and --password-file (the boards' password there)")
			}
			pw, err := os.ReadFile(passwordFile)
			if err != nil {
				return err
			}
			binaries, err := hilBinaries(bins)
			if err != nil {
				return err
			}
			agent := hil.Agent{Binaries: binaries, CloudURL: cloudURL, Password: strings.TrimSpace(string(pw)), Listen: listen,
				TrustNewHostKeys: f.trustNew}
			ctx, stop := untilSignal()
			defer stop()
			for _, b := range boards {
				d, err := hil.Deploy(ctx, b, agent)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): agent ready as a %s, broker %s, binary sha256:%s\n", b.Name, b.Arch, d.Supervisor, d.Broker, d.SHA256)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVar(&bins, "bin", nil, "the sedna binary of an architecture, ARCH=PATH (default bin/sedna-linux-ARCH, as make cross builds them)")
	cmd.Flags().StringVar(&cloudURL, "cloud", "", "the cloud broker as the boards reach it")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "the boards' password on the cloud broker")
	cmd.Flags().StringVar(&listen, "listen", "", "the boards' broker address (default 0.0.0.0:1883)")
	return cmd
}

// hilBinaries are the sedna binaries by architecture: make cross's
// unless --bin says otherwise.
func hilBinaries(bins []string) (map[string]string, error) {
	out := map[string]string{}
	for _, arch := range hil.Arches {
		out[arch] = filepath.Join("bin", "sedna-linux-"+arch)
	}
	for _, b := range bins {
		arch, path, ok := strings.Cut(b, "=")
		if !ok || path == "" || !slices.Contains(hil.Arches, arch) {
			return nil, fmt.Errorf("--bin %s: want ARCH=PATH, ARCH one of %s", b, strings.Join(hil.Arches, ", "))
		}
		out[arch] = path
	}
	return out, nil
}

func newHILRunCmd() *cobra.Command {
	var (
		f        hilFlags
		bins     []string
		scenario string
		out      string
		o        hil.RunOptions
	)
	cmd := &cobra.Command{
		Use:   "run --inventory FILE --scenario FILE",
		Short: "Run a simulator scenario with the boards as its nodes, and report",
		Long: `Run one of the simulator's scenarios (real mode) with the inventory's boards
as its nodes: this host runs the cloud, a fault proxy for each board's cloud
link (listening on --link-host, which the boards must reach) and the
scenario's devices, which publish on each board's broker; the agents are
deployed as by 'sedna hil deploy'; the timeline's link faults act on the
proxies, its kills and restarts on the boards' agents over SSH. Each board is
sampled every second (the agent's RSS and CPU from /proc, its data
directory's size) and times the built-in plugins after the run ('sedna plugin
bench' on the board). The report goes to --out: report.json, report.md and
chart.svg (RSS and backlog over time, per board). The scenario's nodes.count,
if it says one, must be the number of boards; faults name a board by its name
or by prefix-index in the inventory's order. Exits 1 when an expectation did
not hold or an agent restarted on its own.`,
		Example: `  make cross
  sedna hil run --inventory boards.yaml --scenario examples/scenarios/hil-boards.yaml \
    --link-host 10.0.0.2 --out hil-report`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := f.selected(); err != nil {
				return err
			}
			inv, err := hil.LoadInventory(f.inventory)
			if err != nil {
				return err
			}
			if len(f.boards) > 0 {
				var only []hil.Board
				for _, name := range f.boards {
					b, _ := inv.Board(name)
					only = append(only, *b)
				}
				inv.Boards = only
			}
			if scenario == "" {
				return errors.New("give --scenario (a simulator scenario, real mode)")
			}
			s, err := simulator.Load(scenario)
			if err != nil {
				return err
			}
			if o.Binaries, err = hilBinaries(bins); err != nil {
				return err
			}
			o.TrustNewHostKeys = f.trustNew
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			rep, err := hil.Run(ctx, inv, s, o)
			if err != nil {
				return err
			}
			if err := writeHILReport(rep, out, "svg"); err != nil {
				return err
			}
			rep.Sim.WriteSummary(cmd.OutOrStdout())
			fmt.Fprintf(cmd.OutOrStdout(), "report: %s, %s, %s\n", filepath.Join(out, "report.json"), filepath.Join(out, "report.md"),
				filepath.Join(out, "chart.svg"))
			if !rep.OK() {
				return fmt.Errorf("hil run %s: %s", s.Name, strings.Join(rep.Failures(), "; "))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&scenario, "scenario", "", "the scenario (YAML), as for sedna sim run")
	cmd.Flags().StringVar(&out, "out", "hil-report", "the report's directory")
	cmd.Flags().StringArrayVar(&bins, "bin", nil, "the sedna binary of an architecture, ARCH=PATH (default bin/sedna-linux-ARCH)")
	cmd.Flags().StringVar(&o.LinkHost, "link-host", "127.0.0.1", "this host's address as the boards reach it (their cloud links' fault proxies listen there)")
	cmd.Flags().IntVar(&o.PluginCalls, "plugin-calls", 10, "calls of each built-in plugin each board times after the run (negative: none)")
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "leave the agents running after the run")
	return cmd
}

// writeHILReport writes report.json, report.md and the chart into dir.
func writeHILReport(rep *hil.Report, dir, format string) error {
	chart := "chart." + format
	var js, md, ch bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := rep.WriteMarkdown(&md, chart); err != nil {
		return err
	}
	if err := rep.WriteChart(&ch, format); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"report.json": js.Bytes(), "report.md": md.Bytes(), chart: ch.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func newHILReportCmd() *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "report REPORT.json",
		Short: "Write a run's Markdown report and chart again from its JSON",
		Long: `Read the report.json of a 'sedna hil run' and write report.md (the boards
side by side: messages, latency, restarts, RSS, CPU, store, plugin call times)
and its chart (RSS and backlog over time, per board; SVG or PNG) into --out,
by default the JSON's directory.`,
		Example: `  sedna hil report hil-report/report.json --format png`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := hil.ReadReport(args[0])
			if err != nil {
				return err
			}
			if format != "svg" && format != "png" {
				return fmt.Errorf("--format %q: want svg or png", format)
			}
			if out == "" {
				out = filepath.Dir(args[0])
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if err := writeHILReport(rep, out, format); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s, %s\n", filepath.Join(out, "report.md"), filepath.Join(out, "chart."+format))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the directory to write into (default the JSON's)")
	cmd.Flags().StringVar(&format, "format", "svg", "the chart's format: svg or png")
	return cmd
}

func newHILCleanCmd() *cobra.Command {
	var f hilFlags
	cmd := &cobra.Command{
		Use:     "clean --inventory FILE",
		Short:   "Stop each board's agent and remove its directory",
		Example: "  sedna hil clean --inventory boards.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			boards, err := f.selected()
			if err != nil {
				return err
			}
			ctx, stop := untilSignal()
			defer stop()
			for _, b := range boards {
				if err := hil.Clean(ctx, b, f.trustNew); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: agent stopped, %s removed\n", b.Name, b.DataDir)
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
