package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/plugins"
	"github.com/sedna-go/sedna/plugins/abi"
)

type pluginFlags struct {
	dirs     []string
	cacheDir string
	timeout  time.Duration
}

func (f *pluginFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.dirs, "dir", nil, "a directory of installed plugins (*.wasm); repeatable")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", defaultPluginCache(), "compilation cache directory (empty: none)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Second, "deadline of each plugin call")
}

func defaultPluginCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "sedna", "wasm")
}

func (f *pluginFlags) host(ctx context.Context, g *globals, noBuiltins bool) (*plugins.Host, error) {
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	return plugins.New(ctx, plugins.Config{Dirs: f.dirs, CacheDir: f.cacheDir, CallTimeout: f.timeout, Logger: log, NoBuiltins: noBuiltins})
}

func newPluginCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "List, inspect, build and try WASM plugins (hard-example miners, aggregators)",
	}
	cmd.AddCommand(newPluginListCmd(g), newPluginInspectCmd(g), newPluginBuildCmd(), newPluginRunCmd(g), newPluginBenchCmd(g))
	return cmd
}

func newPluginListCmd(g *globals) *cobra.Command {
	var f pluginFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the built-in and installed plugins with kind and parameters",
		Example: "  sedna plugin list\n  sedna plugin list --dir /var/lib/sedna/plugins --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := f.host(cmd.Context(), g, false)
			if err != nil {
				return err
			}
			defer h.Close(context.Background())
			return printPlugins(cmd.OutOrStdout(), h.Plugins(), asJSON)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printPlugins(w io.Writer, infos []plugins.Info, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSOURCE\tPARAMETERS")
	for _, p := range infos {
		var ps []string
		for _, q := range p.Parameters {
			ps = append(ps, q.Key+"="+q.Default)
		}
		src := p.Source
		if src != "builtin" {
			src = filepath.Base(src)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kind, p.Version, src, strings.Join(ps, " "))
	}
	return tw.Flush()
}

func newPluginInspectCmd(g *globals) *cobra.Command {
	var f pluginFlags
	cmd := &cobra.Command{
		Use:     "inspect FILE.wasm",
		Short:   "Load a plugin module sandboxed, check its ABI and print its manifest",
		Example: "  sedna plugin inspect examples/plugins/c-maxprob/c-maxprob.wasm",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := f.host(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			defer h.Close(context.Background())
			start := time.Now()
			infos, err := h.LoadFile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			st, _ := os.Stat(args[0])
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ABI v%d, %d bytes, loaded in %v, %d plugin(s)\n", args[0], abi.Version, st.Size(), time.Since(start).Round(time.Millisecond), len(infos))
			for _, p := range infos {
				fmt.Fprintf(cmd.OutOrStdout(), "\n%s (%s %s)\n", p.Name, p.Kind, p.Version)
				if p.Description != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", p.Description)
				}
				for _, q := range p.Parameters {
					fmt.Fprintf(cmd.OutOrStdout(), "  param %s (default %q) %s\n", q.Key, q.Default, q.Description)
				}
				if len(p.Capabilities) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "  asks for: %s\n", strings.Join(p.Capabilities, ", "))
				}
			}
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newPluginBuildCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Build a plugin written in Go (guest SDK) or C (sedna_plugin.h) into a .wasm module",
		Long: `Build the plugin in DIR. Go: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared with
the go tool on PATH. C: clang --target=wasm32-wasi with wasi-libc (Debian:
clang lld wasi-libc libclang-rt-14-dev-wasm32); the SDK header is supplied.`,
		Example: "  sedna plugin build examples/plugins/go-margin\n  sedna plugin build examples/plugins/c-maxprob -o maxprob.wasm",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := plugins.Build(cmd.Context(), args[0], out)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/<dir name>.wasm)")
	return cmd
}

// runInput is the JSON input of `sedna plugin run`: a miner batch or an
// aggregation round.
type runInput struct {
	Probs [][]float32     `json:"probs"`
	Boxes [][]plugins.Box `json:"boxes"`
	Seed  uint64          `json:"seed"`

	Round   int64             `json:"round"`
	Updates []plugins.Update  `json:"updates"`
	Global  []float32         `json:"global"`
	State   []float32         `json:"state"`
	Params  map[string]string `json:"params"`
}

func newPluginRunCmd(g *globals) *cobra.Command {
	var (
		f      pluginFlags
		input  string
		name   string
		params []string
	)
	cmd := &cobra.Command{
		Use:   "run FILE.wasm|NAME --input FILE",
		Short: "Run a plugin by hand on a JSON input and print its result as JSON",
		Long: `Run a plugin on a JSON input. A miner takes {"probs": [[...]], "boxes":
[[[xmin, ymin, xmax, ymax, score, label], ...], ...], "seed": N}; an
aggregator {"round": N, "updates": [{"weights": [...], "samples": N}, ...],
"global": [...], "state": [...]}. Parameters come from "params" in the input
and from --param key=value. The argument is a module file or the name of a
built-in or installed plugin.`,
		Example: `  echo '{"probs": [[0.5, 0.5], [0.99, 0.01]]}' > in.json
  sedna plugin run CrossEntropy --input in.json --param threshold_cross_entropy=0.6`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			raw, err := readInput(cmd.InOrStdin(), input)
			if err != nil {
				return err
			}
			var in runInput
			if err := json.Unmarshal(raw, &in); err != nil {
				return fmt.Errorf("input %s: %w", input, err)
			}
			if in.Params == nil {
				in.Params = map[string]string{}
			}
			for _, p := range params {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--param %q: want key=value", p)
				}
				in.Params[k] = v
			}
			h, err := f.host(ctx, g, false)
			if err != nil {
				return err
			}
			defer h.Close(context.Background())
			target := args[0]
			if strings.HasSuffix(target, ".wasm") {
				infos, err := h.LoadFile(ctx, target)
				if err != nil {
					return err
				}
				if name == "" {
					if len(infos) != 1 {
						return fmt.Errorf("%s holds %d plugins: choose one with --plugin", target, len(infos))
					}
					name = infos[0].Name
				}
				target = name
			}
			var kind string
			for _, p := range h.Plugins() {
				if p.Name == target {
					kind = p.Kind
				}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			switch kind {
			case abi.KindMiner:
				m, err := h.Miner(target, in.Params)
				if err != nil {
					return err
				}
				b := plugins.Batch{Boxes: in.Boxes, Seed: in.Seed}
				for _, row := range in.Probs {
					if b.Classes == 0 {
						b.Classes = len(row)
					}
					if len(row) != b.Classes {
						return fmt.Errorf("input: every probs row needs %d classes", b.Classes)
					}
					b.Probs = append(b.Probs, row...)
				}
				v, err := m.Mine(ctx, b)
				if err != nil {
					return err
				}
				return enc.Encode(v)
			case abi.KindAggregator:
				a, err := h.Aggregator(target, in.Params)
				if err != nil {
					return err
				}
				res, err := a.Aggregate(ctx, plugins.Round{Number: in.Round, Updates: in.Updates, Global: in.Global, State: in.State})
				if err != nil {
					return err
				}
				return enc.Encode(res)
			}
			_, err = h.Miner(target, nil) // the error names what exists
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&input, "input", "-", "JSON input file (- for standard input)")
	cmd.Flags().StringVar(&name, "plugin", "", "which plugin of a module holding several")
	cmd.Flags().StringArrayVar(&params, "param", nil, "a parameter key=value; repeatable")
	return cmd
}

func readInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// pluginBench is what `sedna plugin bench --json` prints.
type pluginBench struct {
	Arch    string              `json:"arch"`
	Engine  string              `json:"engine"`
	Plugins []plugins.CallTimes `json:"plugins"`
}

func newPluginBenchCmd(g *globals) *cobra.Command {
	var (
		f      pluginFlags
		o      plugins.TimeOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "bench [NAME...]",
		Short: "Time miners and aggregators on this machine (default every one loaded)",
		Long: `Time each plugin's calls on a fixed synthetic input, sandbox included: a
miner on a batch of --batch samples (10 classes, 3 boxes each), an aggregator
on --updates updates of --weights float32. The input is the same on every
machine, so boards compare; the first call (instantiation) is not timed.
wazero compiles plugins on amd64 and arm64 and interprets them on armv7.`,
		Example: `  sedna plugin bench CrossEntropy FedAvg --calls 50
  sedna plugin bench --json > times.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := f.host(ctx, g, false)
			if err != nil {
				return err
			}
			defer h.Close(context.Background())
			if len(args) == 0 {
				for _, p := range h.Plugins() {
					if p.Kind == abi.KindMiner || p.Kind == abi.KindAggregator {
						args = append(args, p.Name)
					}
				}
			}
			out := pluginBench{Arch: runtime.GOARCH, Engine: plugins.Engine()}
			for _, name := range args {
				ct, err := h.Time(ctx, name, o)
				if err != nil {
					return err
				}
				out.Plugins = append(out.Plugins, ct)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s, wazero %s\n", out.Arch, out.Engine)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tCALLS\tSIZE\tP50\tP99")
			for _, ct := range out.Plugins {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%v\t%v\n", ct.Plugin, ct.Kind, ct.Calls, ct.Size, ct.P50.Round(time.Microsecond), ct.P99.Round(time.Microsecond))
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&o.Calls, "calls", 20, "timed calls per plugin")
	cmd.Flags().IntVar(&o.Batch, "batch", 64, "a miner's samples per call")
	cmd.Flags().IntVar(&o.Updates, "updates", 10, "an aggregator's updates per call")
	cmd.Flags().IntVar(&o.Weights, "weights", 10000, "float32 weights per update")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
