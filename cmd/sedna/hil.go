package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/hil"
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
	cmd.AddCommand(newHILDeployCmd(), newHILCleanCmd())
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
			agent := hil.Agent{Binaries: map[string]string{}, CloudURL: cloudURL, Password: strings.TrimSpace(string(pw)), Listen: listen,
				TrustNewHostKeys: f.trustNew}
			for _, arch := range hil.Arches {
				agent.Binaries[arch] = filepath.Join("bin", "sedna-linux-"+arch)
			}
			for _, b := range bins {
				arch, path, ok := strings.Cut(b, "=")
				if !ok || path == "" {
					return fmt.Errorf("--bin %s: want ARCH=PATH", b)
				}
				agent.Binaries[arch] = path
			}
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
