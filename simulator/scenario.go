package simulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Duration is a time.Duration written as "1.5s", "200ms".
type Duration time.Duration

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// Scenario is a simulation, as written in a scenario file.
type Scenario struct {
	Name string `json:"name"`
	// Mode is "real" (the default: the system itself) or "deterministic"
	// (a model of its promises on a fake clock; same seed, same report).
	Mode string `json:"mode"`
	Seed uint64 `json:"seed"`
	// Duration is how long devices publish; the run then waits up to
	// Drain for what is queued to arrive.
	Duration Duration `json:"duration"`
	Drain    Duration `json:"drain"`
	Nodes    Nodes    `json:"nodes"`
	Devices  []Device `json:"devices"`
	Data     Data     `json:"data"`
	Faults   []Fault  `json:"faults"`
	Expect   Expect   `json:"expect"`
	// Jobs are files of Sedna YAML (paths relative to the scenario file),
	// applied once the fleet is up, as `sedna apply` would; the report
	// gives each resource's state at the end. In deterministic mode the
	// cloud's job control and federated rounds are the system's own on the
	// fake clock, the nodes' workers a model (desjobs.go).
	Jobs []string `json:"jobs"`
	// Incremental, if set, runs an incremental learning job's camera and
	// labelling oracle beside the devices (real mode; see Learning).
	Incremental *Learning `json:"incremental,omitempty"`
	// Lifelong, if set, runs a lifelong learning job's sensor of an
	// unseen task and labelling oracle (real mode; see Lifelong).
	Lifelong *Lifelong `json:"lifelong,omitempty"`
	dir      string
}

// Nodes says how many nodes the fleet has and how they run.
type Nodes struct {
	Count int `json:"count"`
	// Prefix names them: prefix-0, prefix-1, ... (default "node").
	Prefix string `json:"prefix"`
	// Names, if set, are the nodes' names instead, in order (count
	// defaults to how many); faults may name a node by either.
	Names []string `json:"names,omitempty"`
	// Subprocess is how many of them (the first ones) run as `sedna edge`
	// processes, so that a kill is a real SIGKILL.
	Subprocess int `json:"subprocess"`
	// Arch is the architecture of each subprocess node, in order: native
	// (the default), arm64 or armv7. A node of another architecture runs
	// that architecture's sedna binary (Options.Binaries) under Debian's
	// qemu-user (qemu-aarch64, qemu-arm): an emulated board.
	Arch []string `json:"arch"`
	// WriteMode of their stores: process (default) or sync.
	WriteMode string `json:"writeMode"`
	// Queue bounds each node's uplink queue (a small disk); default the
	// agent's (256 MiB, refuse when full).
	Queue QueueLimits `json:"queue"`
	// DiskMiB, if set, gives each subprocess node a file system of its own
	// of that size (a tmpfs in a private mount namespace: Linux, as root or
	// with user namespaces), which diskFull fills for real and diskFree
	// empties. Its file system ends with its process, so such a node is
	// not killed and restarted.
	DiskMiB int64 `json:"diskMiB"`
}

// QueueLimits bound a node's uplink queue.
type QueueLimits struct {
	MaxBytes int64  `json:"maxBytes"`
	Policy   string `json:"policy"` // refuse (default), drop-oldest
	// MaxAge drops what waited longer, by the node's own clock (which the
	// clock faults move); default none.
	MaxAge Duration `json:"maxAge"`
}

// Device is a kind of virtual device, PerNode of them on every node.
type Device struct {
	Kind    string  `json:"kind"` // sensor, camera, comfort, kubeedge, twin (see devices.go)
	PerNode int     `json:"perNode"`
	Rate    float64 `json:"rate"` // messages per second per device
	QoS     *int    `json:"qos"`  // 1 (default) or 0
	Size    int     `json:"size"` // payload bytes, at least 24 (default 64)
}

// Fault is one event of the timeline.
type Fault struct {
	At Duration `json:"at"`
	// Nodes names the nodes ("node-3"), ranges ("node-0..node-4") or "all".
	Nodes []string `json:"nodes"`
	// Action: linkDown, linkUp, latency, bandwidth, reset, stall, unstall,
	// kill (SIGKILL, subprocess nodes), restart, diskFull and diskFree (the
	// node's queue may hold no more than it holds now, then its limit comes
	// back; in-process nodes), and the node's clock (in-process nodes):
	// clockSet (Value an RFC 3339 time the clock reads from then on, such as
	// 1970-01-01T00:00:00Z for a board without a real-time clock, or "real"),
	// clockSkew (Value how far the clock is off real time, "-2h") and
	// clockJump (Value how far it jumps, "+90m").
	Action string `json:"action"`
	// Value: latency "50ms"; bandwidth bytes/s; the clock's as above.
	Value string   `json:"value,omitempty"`
	Every Duration `json:"every,omitempty"` // repeat (flapping): the action toggles each period until Until
	Until Duration `json:"until,omitempty"`
}

// Expect is what the run must show; a nil field is not checked.
type Expect struct {
	Lost       *int64   `json:"lost"`
	Duplicated *int64   `json:"duplicated"` // acknowledged messages received more than once
	MinLost    *int64   `json:"minLost"`    // a negative control: loss must be seen
	MaxP99     Duration `json:"maxP99Latency"`
	// Jobs are what the scenario's jobs must show at the end.
	Jobs []JobExpect `json:"jobs"`
}

// JobExpect is what one job must show: its phase and bounds on the
// metrics its status reports.
type JobExpect struct {
	Key     string           `json:"key"` // Kind/namespace/name
	Phase   string           `json:"phase"`
	Metrics map[string]Bound `json:"metrics"`
}

// Bound bounds a metric; a nil end is open.
type Bound struct {
	Min *float64 `json:"min"`
	Max *float64 `json:"max"`
}

var actions = map[string]bool{"linkDown": true, "linkUp": true, "latency": true, "bandwidth": true, "reset": true,
	"stall": true, "unstall": true, "kill": true, "restart": true, "diskFull": true, "diskFree": true,
	"clockSet": true, "clockSkew": true, "clockJump": true}

// inProcessOnly are the actions that reach into a node's process.
var inProcessOnly = map[string]bool{"diskFull": true, "diskFree": true, "clockSet": true, "clockSkew": true, "clockJump": true}

// ClockOffset is where a clock fault puts a node's clock, as an offset from
// real time: given the offset before and real time now.
func (f Fault) ClockOffset(before time.Duration, now time.Time) time.Duration {
	switch f.Action {
	case "clockSet":
		if f.Value == "real" {
			return 0
		}
		t, _ := time.Parse(time.RFC3339, f.Value)
		return t.Sub(now)
	case "clockSkew":
		d, _ := time.ParseDuration(f.Value)
		return d
	case "clockJump":
		d, _ := time.ParseDuration(f.Value)
		return before + d
	}
	return before
}

// Load reads a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if s != nil {
		s.dir = filepath.Dir(path)
	}
	return s, err
}

// JobFiles are the scenario's job files, resolved against its directory.
func (s *Scenario) JobFiles() []string {
	out := make([]string, len(s.Jobs))
	for i, j := range s.Jobs {
		if filepath.IsAbs(j) || s.dir == "" {
			out[i] = j
		} else {
			out[i] = filepath.Join(s.dir, j)
		}
	}
	return out
}

// Parse reads a scenario, fills defaults and checks it.
func Parse(b []byte) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if s.Mode == "" {
		s.Mode = "real"
	}
	if s.Nodes.Prefix == "" {
		s.Nodes.Prefix = "node"
	}
	if s.Nodes.Count == 0 {
		s.Nodes.Count = len(s.Nodes.Names)
	}
	if s.Nodes.WriteMode == "" {
		s.Nodes.WriteMode = "process"
	}
	if s.Drain == 0 {
		s.Drain = Duration(60 * time.Second)
	}
	for i := range s.Devices {
		d := &s.Devices[i]
		if d.Kind == "" {
			d.Kind = "sensor"
		}
		if d.PerNode == 0 {
			d.PerNode = 1
		}
		if d.Size == 0 {
			d.Size = 64
		}
		if d.QoS == nil {
			one := 1
			d.QoS = &one
		}
	}
	return &s, s.check()
}

func (s *Scenario) check() error {
	var errs []error
	fail := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if s.Mode != "real" && s.Mode != "deterministic" {
		fail("mode %q: want real or deterministic", s.Mode)
	}
	if s.Nodes.Count < 1 || s.Nodes.Count > 100000 {
		fail("nodes.count %d: want 1 to 100000", s.Nodes.Count)
	}
	if s.Nodes.Subprocess < 0 || s.Nodes.Subprocess > s.Nodes.Count {
		fail("nodes.subprocess %d: want 0 to nodes.count", s.Nodes.Subprocess)
	}
	if len(s.Nodes.Arch) > s.Nodes.Subprocess {
		fail("nodes.arch: %d architectures for %d subprocess nodes", len(s.Nodes.Arch), s.Nodes.Subprocess)
	}
	for i, a := range s.Nodes.Arch {
		if _, ok := Emulators[a]; !ok && a != "" && a != "native" {
			fail("nodes.arch[%d] %q: want native, arm64 or armv7", i, a)
		}
		if a != "" && a != "native" && s.Nodes.DiskMiB > 0 {
			fail("nodes.arch[%d] %s: an emulated node has no small disk (nodes.diskMiB)", i, a)
		}
	}
	if len(s.Nodes.Names) > 0 && len(s.Nodes.Names) != s.Nodes.Count {
		fail("nodes.names: %d names for %d nodes", len(s.Nodes.Names), s.Nodes.Count)
	}
	seenName := map[string]bool{}
	for i, n := range s.Nodes.Names {
		if !nodeNameRE.MatchString(n) || seenName[n] {
			fail("nodes.names[%d] %q: lower-case letters, digits and '-', each name once", i, n)
		}
		seenName[n] = true
	}
	if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`).MatchString(s.Nodes.Prefix) {
		fail("nodes.prefix %q: letters, digits, '-', '_'", s.Nodes.Prefix)
	}
	if s.Duration <= 0 {
		fail("duration: required")
	}
	if p := s.Nodes.Queue.Policy; p != "" && p != "refuse" && p != "drop-oldest" {
		fail("nodes.queue.policy %q: want refuse or drop-oldest", p)
	}
	if s.Nodes.Queue.MaxBytes < 0 {
		fail("nodes.queue.maxBytes: negative")
	}
	if d := s.Nodes.DiskMiB; d != 0 && (d < 64 || s.Nodes.Subprocess == 0) {
		fail("nodes.diskMiB %d: at least 64 (a store keeps 32 MiB free), for subprocess nodes", d)
	}
	if s.Incremental != nil {
		errs = append(errs, s.Incremental.check(s)...)
		if len(s.Jobs) == 0 {
			fail("incremental: the scenario has no jobs files")
		}
	}
	if s.Lifelong != nil {
		errs = append(errs, s.Lifelong.check(s)...)
		if len(s.Jobs) == 0 {
			fail("lifelong: the scenario has no jobs files")
		}
	}
	for i, je := range s.Expect.Jobs {
		if len(s.Jobs) == 0 {
			fail("expect.jobs[%d]: the scenario has no jobs files", i)
		}
		if strings.Count(je.Key, "/") != 2 {
			fail("expect.jobs[%d].key %q: Kind/namespace/name", i, je.Key)
		}
	}
	if s.Nodes.Queue.MaxAge < 0 {
		fail("nodes.queue.maxAge: negative")
	}
	for i, d := range s.Devices {
		if !kinds[d.Kind] {
			fail("devices[%d].kind %q: want one of %s", i, d.Kind, strings.Join(sortedKeys(kinds), ", "))
		}
		if (d.Kind == "kubeedge" || d.Kind == "twin") && *d.QoS == 0 {
			fail("devices[%d]: %s devices publish at QoS 1", i, d.Kind)
		}
		if d.Rate <= 0 || d.Rate > 10000 {
			fail("devices[%d].rate %v: want (0, 10000] messages/s", i, d.Rate)
		}
		if *d.QoS != 0 && *d.QoS != 1 {
			fail("devices[%d].qos %d: want 0 or 1", i, *d.QoS)
		}
		if d.Size < 24 {
			fail("devices[%d].size %d: at least 24 bytes (the payload carries a sequence and a time)", i, d.Size)
		}
	}
	for i, f := range s.Faults {
		if !actions[f.Action] {
			fail("faults[%d].action %q: want one of %s", i, f.Action, strings.Join(sortedKeys(actions), ", "))
		}
		if _, err := s.NodesOf(f.Nodes); err != nil {
			fail("faults[%d].nodes: %v", i, err)
		}
		if inProcessOnly[f.Action] {
			idx, _ := s.NodesOf(f.Nodes)
			for _, k := range idx {
				if k < s.Nodes.Subprocess && (s.Nodes.DiskMiB > 0 && (f.Action == "diskFull" || f.Action == "diskFree")) {
					continue // a real disk to fill
				}
				if k < s.Nodes.Subprocess {
					fail("faults[%d]: %s acts on in-process nodes; %s is a subprocess", i, f.Action, s.NodeName(k))
					break
				}
			}
		}
		if (f.Action == "kill" || f.Action == "restart") && s.Nodes.DiskMiB > 0 {
			idx, _ := s.NodesOf(f.Nodes)
			if len(idx) > 0 && idx[0] < s.Nodes.Subprocess {
				fail("faults[%d]: %s on %s, whose file system (nodes.diskMiB) ends with its process", i, f.Action, s.NodeName(idx[0]))
			}
		}
		if (f.Action == "kill" || f.Action == "restart") && f.Every > 0 {
			fail("faults[%d]: kill and restart do not repeat", i)
		}
		switch f.Action {
		case "clockSet":
			if _, err := time.Parse(time.RFC3339, f.Value); err != nil && f.Value != "real" {
				fail("faults[%d].value %q: an RFC 3339 time (1970-01-01T00:00:00Z) or real", i, f.Value)
			}
		case "clockSkew", "clockJump":
			if _, err := time.ParseDuration(f.Value); err != nil {
				fail("faults[%d].value %q: a duration (-2h, +90m)", i, f.Value)
			}
		}
		if f.Action == "latency" {
			if _, err := time.ParseDuration(f.Value); err != nil {
				fail("faults[%d].value %q: a duration", i, f.Value)
			}
		}
		if f.Action == "bandwidth" {
			if _, err := strconv.Atoi(f.Value); err != nil {
				fail("faults[%d].value %q: bytes per second", i, f.Value)
			}
		}
		if f.Every > 0 && f.Action != "linkDown" && f.Action != "stall" {
			fail("faults[%d].every: only linkDown and stall flap", i)
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// NodeName is the name of node i.
func (s *Scenario) NodeName(i int) string {
	if i < len(s.Nodes.Names) {
		return s.Nodes.Names[i]
	}
	return fmt.Sprintf("%s-%d", s.Nodes.Prefix, i)
}

// OnBoards makes the scenario's nodes the boards named, in order (a
// hardware-in-the-loop run): the scenario's nodes.count, if it says one,
// must be how many there are, and what only the simulator's own nodes can
// do (subprocess and emulated nodes, small disks, clock and disk faults)
// is refused. Faults may name a board by its name or, as before, by
// prefix-index in the boards' order.
func (s *Scenario) OnBoards(names []string) error {
	if s.Mode != "real" {
		return fmt.Errorf("scenario %s: boards run real mode, not %s", s.Name, s.Mode)
	}
	if len(s.Nodes.Names) > 0 && !slices.Equal(s.Nodes.Names, names) {
		return fmt.Errorf("scenario %s: nodes.names %v are not the boards %v", s.Name, s.Nodes.Names, names)
	}
	if s.Nodes.Count != 0 && s.Nodes.Count != len(names) {
		return fmt.Errorf("scenario %s: nodes.count is %d, the inventory has %d boards", s.Name, s.Nodes.Count, len(names))
	}
	if s.Nodes.Subprocess > 0 || len(s.Nodes.Arch) > 0 || s.Nodes.DiskMiB > 0 {
		return fmt.Errorf("scenario %s: nodes.subprocess, nodes.arch and nodes.diskMiB say how the simulator runs its own nodes; "+
			"on boards the inventory says it", s.Name)
	}
	for i, f := range s.Faults {
		if inProcessOnly[f.Action] {
			return fmt.Errorf("scenario %s: faults[%d] %s: not on boards (their clocks and disks are their own)", s.Name, i, f.Action)
		}
	}
	s.Nodes.Names, s.Nodes.Count = names, len(names)
	return s.check()
}

// NodesOf resolves a fault's node list to node indexes.
func (s *Scenario) NodesOf(list []string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	add := func(i int) {
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	index := func(name string) (int, error) {
		if i := slices.Index(s.Nodes.Names, name); i >= 0 {
			return i, nil
		}
		p := s.Nodes.Prefix + "-"
		if !strings.HasPrefix(name, p) {
			return 0, fmt.Errorf("%q is not a node of this fleet", name)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(name, p))
		if err != nil || i < 0 || i >= s.Nodes.Count {
			return 0, fmt.Errorf("%q is not a node of this fleet", name)
		}
		return i, nil
	}
	for _, n := range list {
		switch {
		case n == "all":
			for i := range s.Nodes.Count {
				add(i)
			}
		case strings.Contains(n, ".."):
			a, b, _ := strings.Cut(n, "..")
			i, err := index(a)
			if err != nil {
				return nil, err
			}
			j, err := index(b)
			if err != nil {
				return nil, err
			}
			for k := i; k <= j; k++ {
				add(k)
			}
		default:
			i, err := index(n)
			if err != nil {
				return nil, err
			}
			add(i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no node named")
	}
	sort.Ints(out)
	return out, nil
}

// Step is one injection of the timeline: a fault on nodes, on or (for the
// end of a flapping one) off.
type Step struct {
	At    time.Duration
	Fault Fault
	Nodes []int
	On    bool
}

// Timeline expands the faults into steps: a flapping fault toggles every
// period until its end, then is turned off.
func (s *Scenario) Timeline() []Step {
	var out []Step
	for _, f := range s.Faults {
		idx, _ := s.NodesOf(f.Nodes)
		at := time.Duration(f.At)
		if f.Every <= 0 {
			out = append(out, Step{at, f, idx, true})
			continue
		}
		until := time.Duration(f.Until)
		if until == 0 {
			until = time.Duration(s.Duration)
		}
		on := true
		for t := at; t < until; t += time.Duration(f.Every) {
			out = append(out, Step{t, f, idx, on})
			on = !on
		}
		out = append(out, Step{until, f, idx, false})
	}
	return out
}

// Describe says what a step of the timeline does, for the report.
func (s *Scenario) Describe(f Fault, idx []int, on bool) string {
	names := make([]string, len(idx))
	for i, k := range idx {
		names[i] = s.NodeName(k)
	}
	what := f.Action
	if f.Value != "" {
		what += " " + f.Value
	}
	if !on {
		what += " off"
	}
	return what + " on " + strings.Join(names, ",")
}

// Emulators run the sedna binary of an emulated node's architecture
// (Debian's qemu-user).
var Emulators = map[string]string{"arm64": "qemu-aarch64", "armv7": "qemu-arm"}

// ArchOf is node i's architecture: native, or one of Emulators'.
func (s *Scenario) ArchOf(i int) string {
	if i < len(s.Nodes.Arch) && s.Nodes.Arch[i] != "" {
		return s.Nodes.Arch[i]
	}
	return "native"
}
