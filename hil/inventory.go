package hil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// ErrInvalid: an inventory that cannot be used.
var ErrInvalid = errors.New("hil: invalid inventory")

// Inventory is the boards of a run.
type Inventory struct {
	Boards []Board `json:"boards"`
}

// Board is one edge node of a run: a board reached over SSH.
type Board struct {
	// Name is the node's name (the cloud's credentials must know it).
	Name string `json:"name"`
	// Arch is the board's architecture: arm64, armv7 or amd64; it picks
	// the binary.
	Arch string `json:"arch"`
	// Address is the board's SSH server, host:port (port 22 if none).
	Address string `json:"address"`
	// User, KeyFile and KnownHosts are how the board is reached: the
	// user's private key, and the file of the hosts' keys checked.
	User       string `json:"user"`
	KeyFile    string `json:"keyFile"`
	KnownHosts string `json:"knownHosts"`
	// DataDir is where the agent lives on the board: its binary,
	// configuration, store and log.
	DataDir string `json:"dataDir"`
	// Listen is the address of the agent's broker on the board (default
	// the deploy's, 0.0.0.0:1883); Broker is that broker as this host
	// reaches it (default the SSH address's host with Listen's port): the
	// devices of a run publish there.
	Listen string `json:"listen,omitempty"`
	Broker string `json:"broker,omitempty"`
	// Emulator, for an emulated board, is the command the binary runs
	// under (qemu-arm, qemu-aarch64); empty on real hardware.
	Emulator string `json:"emulator,omitempty"`
	// CPUPercent and MemoryMiB, when set, limit the agent (systemd's
	// CPUQuota and MemoryMax; ulimit -v without systemd).
	CPUPercent int `json:"cpuPercent,omitempty"`
	MemoryMiB  int `json:"memoryMiB,omitempty"`
}

// Arches are the architectures a board may have.
var Arches = []string{"arm64", "armv7", "amd64"}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// LoadInventory reads an inventory file (YAML): relative key and
// known_hosts paths are taken from the file's directory.
func LoadInventory(path string) (*Inventory, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var inv Inventory
	if err := yaml.UnmarshalStrict(raw, &inv); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	base := filepath.Dir(path)
	for i := range inv.Boards {
		b := &inv.Boards[i]
		for _, p := range []*string{&b.KeyFile, &b.KnownHosts} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(base, *p)
			}
		}
	}
	return &inv, inv.Validate()
}

// Validate says what is wrong with the inventory, board by board.
func (inv *Inventory) Validate() error {
	var errs []string
	if len(inv.Boards) == 0 {
		errs = append(errs, "no boards")
	}
	seen := map[string]bool{}
	for i, b := range inv.Boards {
		where := fmt.Sprintf("boards[%d] %s", i, b.Name)
		if !nameRE.MatchString(b.Name) {
			errs = append(errs, where+": name: lower-case letters, digits and '-'")
		}
		if seen[b.Name] {
			errs = append(errs, where+": a second board of that name")
		}
		seen[b.Name] = true
		if !slices.Contains(Arches, b.Arch) {
			errs = append(errs, fmt.Sprintf("%s: arch %q: want one of %s", where, b.Arch, strings.Join(Arches, ", ")))
		}
		if b.Address == "" || b.User == "" || b.KeyFile == "" || b.KnownHosts == "" {
			errs = append(errs, where+": address, user, keyFile and knownHosts are required")
		}
		if !filepath.IsAbs(b.DataDir) || strings.ContainsAny(b.DataDir, " '\"$`\\") {
			errs = append(errs, where+": dataDir: an absolute path without spaces or quotes")
		}
		if b.Emulator != "" && !regexp.MustCompile(`^[A-Za-z0-9_./-]+$`).MatchString(b.Emulator) {
			errs = append(errs, where+": emulator: a command name or path")
		}
		if b.CPUPercent < 0 || b.MemoryMiB < 0 {
			errs = append(errs, where+": cpuPercent and memoryMiB are not negative")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Board returns the board named name.
func (inv *Inventory) Board(name string) (*Board, bool) {
	for i := range inv.Boards {
		if inv.Boards[i].Name == name {
			return &inv.Boards[i], true
		}
	}
	return nil, false
}

// addr is the board's address with a port.
func (b *Board) addr() string {
	if strings.Contains(b.Address, ":") {
		return b.Address
	}
	return b.Address + ":22"
}
