// Command sedna is the one binary of Sedna-Go: the cloud manager, the edge
// agent, and the tools around them. Run `sedna help` for the commands.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// version, commit and date are stamped at build time (make build,
// make release: -ldflags "-X main.version=... -X main.commit=... -X
// main.date=..."); a plain go build leaves version "dev" and takes the
// commit and its time from what Go records of the checkout.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildInfo is the version, commit and build date of this binary.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
	Arch    string `json:"arch"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(), Arch: runtime.GOOS + "/" + runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		b.Arch += "v7"
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && commit == "" && b.Commit != "":
				b.Commit += "-dirty"
			}
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sedna:", err)
		os.Exit(1)
	}
}

type globals struct {
	logLevel string
	logJSON  bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "sedna",
		Short:         "Edge-cloud collaborative AI over an MQTT event backbone",
		Long:          "Sedna-Go runs joint inference, incremental, federated and lifelong learning across edge nodes and a cloud,\nwith every message an event on an MQTT topic tree that survives slow and broken links.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().BoolVar(&g.logJSON, "log-json", false, "log as JSON lines")
	root.AddCommand(newVersionCmd(), newCloudCmd(g), newEdgeCmd(g), newEventsCmd(g), newPasswdCmd(),
		newDemoCmd(g), newBenchCmd(g), newPluginCmd(g),
		newApplyCmd(), newGetCmd(), newDescribeCmd(), newDeleteCmd(), newWatchCmd(), newLogsCmd(), newLabelCmd(), newKBCmd(), newModelCmd(), newSimCmd(g), newHILCmd(),
		newTokenCmd(), newNodeCmd(), newSecretCmd(), newDashboardCmd(), newRabbitMQCmd())
	return root
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
}

// loadConfig reads a YAML config file into v, refusing unknown fields.
func loadConfig(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// untilSignal returns a context canceled by SIGINT or SIGTERM.
func untilSignal() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit and build date",
		Example: "  sedna version\n  sedna version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			switch output {
			case "":
				fmt.Fprintf(cmd.OutOrStdout(), "sedna %s (commit %s, built %s, %s, %s)\n", b.Version, b.Commit, b.Date, b.Go, b.Arch)
			case "json":
				return json.NewEncoder(cmd.OutOrStdout()).Encode(b)
			default:
				return fmt.Errorf("-o %q: want json, or nothing", output)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json: the version as JSON")
	return cmd
}
