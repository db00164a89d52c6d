package plugins

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sedna-go/sedna/plugins/abi"
	"github.com/sedna-go/sedna/plugins/builtin"
	"github.com/sedna-go/sedna/topics"
)

// Capabilities a manifest may ask for.
const (
	CapClock  = "clock"  // the real wall clock and monotonic clock
	CapRandom = "random" // the host's cryptographic random source
	CapEnv    = "env"    // the environment variables of Config.Env
	CapFS     = "fs"     // Config.FSRoot mounted read-only at /
)

// Settings are a plugin host's settings as a config file says them, on a
// node or in the cloud (edge.Config.Plugins, cloud.Config.Plugins).
type Settings struct {
	// Dirs hold installed plugins (*.wasm), loaded beside the built-ins.
	Dirs []string `json:"dirs,omitempty"`
	// Allow lists the capabilities plugins may be granted: clock, random,
	// env, fs.
	Allow []string `json:"allow,omitempty"`
}

// Config tunes a Host. The zero value is usable.
type Config struct {
	// CacheDir keeps compiled modules across runs (a cold start drops from
	// about a second to tens of milliseconds for a Go guest). Empty: compile
	// in memory each time the host starts.
	CacheDir string
	// MemoryLimitPages caps each instance's linear memory in 64 KiB pages.
	// Default 1024 (64 MiB).
	MemoryLimitPages uint32
	// RecycleBytes: an instance whose linear memory grew beyond this is
	// closed after its call, since WASM memory never shrinks; the next call
	// gets a fresh one. Default 32 MiB.
	RecycleBytes uint32
	// CallTimeout bounds every call unless its context has an earlier
	// deadline. Default 2s.
	CallTimeout time.Duration
	// MaxInstances bounds the instances of one module, which is the number
	// of calls it serves at once. Default GOMAXPROCS.
	MaxInstances int
	// Allow lists the capabilities the host grants to a manifest that asks
	// for them. A module asking for one not listed is refused.
	Allow []string
	// Env is what a plugin granted CapEnv sees.
	Env map[string]string
	// FSRoot is what a plugin granted CapFS sees, read-only.
	FSRoot string
	// Dirs are scanned for *.wasm files at New; each is loaded like a
	// built-in.
	Dirs []string
	// NoBuiltins leaves the built-in module out (tests of the loading path).
	NoBuiltins bool
	// Logger receives guest output and discarded instances. Default
	// slog.Default().
	Logger *slog.Logger
}

// Info describes one registered plugin.
type Info struct {
	abi.PluginInfo
	// Source is "builtin" or the file or name the module was loaded from.
	Source string `json:"source"`
}

// Host loads plugin modules and serves calls to their plugins. It is safe for
// concurrent use; Close releases everything.
type Host struct {
	cfg     Config
	log     *slog.Logger
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	mu      sync.RWMutex
	byName  map[string]*entry
	modules []*module
	closed  bool
}

type entry struct {
	info Info
	mod  *module
}

// New starts a host and loads the built-ins and every module in cfg.Dirs.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = 1024
	}
	if cfg.RecycleBytes == 0 {
		cfg.RecycleBytes = 32 << 20
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = runtime.GOMAXPROCS(0)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, byName: map[string]*entry{}}
	if h.log == nil {
		h.log = slog.Default()
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(cfg.MemoryLimitPages)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugins: compilation cache %s: %w", cfg.CacheDir, err)
		}
		h.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		h.Close(ctx)
		return nil, fmt.Errorf("plugins: wasi: %w", err)
	}
	if !cfg.NoBuiltins {
		if _, err := h.Load(ctx, builtin.Source, builtin.Wasm); err != nil {
			h.Close(ctx)
			return nil, err
		}
	}
	for _, dir := range cfg.Dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.wasm"))
		if err != nil {
			h.Close(ctx)
			return nil, fmt.Errorf("plugins: %s: %w", dir, err)
		}
		sort.Strings(files)
		for _, f := range files {
			if _, err := h.LoadFile(ctx, f); err != nil {
				h.Close(ctx)
				return nil, err
			}
		}
	}
	return h, nil
}

// Close discards every instance and compiled module.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	mods := h.modules
	h.mu.Unlock()
	for _, m := range mods {
		m.close(ctx)
	}
	err := h.rt.Close(ctx)
	if h.cache != nil {
		h.cache.Close(ctx)
	}
	return err
}

// LoadFile loads a module from a .wasm file.
func (h *Host) LoadFile(ctx context.Context, path string) ([]Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	return h.Load(ctx, path, b)
}

// Load compiles and checks a module and registers its plugins by name. A
// name already registered is refused: plugins are called by name, so two of
// one name would make a call ambiguous.
func (h *Host) Load(ctx context.Context, source string, wasm []byte) ([]Info, error) {
	m, err := h.open(ctx, source, wasm)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		m.close(ctx)
		return nil, ErrClosed
	}
	for _, p := range m.manifest.Plugins {
		if e, ok := h.byName[p.Name]; ok {
			m.close(ctx)
			return nil, fmt.Errorf("plugins: %s: %w: plugin %q is already provided by %s", source, ErrBadModule, p.Name, e.info.Source)
		}
	}
	infos := make([]Info, 0, len(m.manifest.Plugins))
	for _, p := range m.manifest.Plugins {
		info := Info{PluginInfo: p, Source: source}
		h.byName[p.Name] = &entry{info: info, mod: m}
		infos = append(infos, info)
	}
	h.modules = append(h.modules, m)
	return infos, nil
}

// Plugins lists the registered plugins by kind, then name.
func (h *Host) Plugins() []Info {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]Info, 0, len(h.byName))
	for _, e := range h.byName {
		out = append(out, e.info)
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// lookup finds a plugin of a kind and resolves its parameters: the caller's
// values over the manifest's defaults, and no key the manifest lacks.
func (h *Host) lookup(name, kind string, params map[string]string) (*entry, []abi.KV, error) {
	h.mu.RLock()
	e, ok := h.byName[name]
	closed := h.closed
	var names []string
	if !ok {
		for n, e := range h.byName {
			if e.info.Kind == kind {
				names = append(names, n)
			}
		}
	}
	h.mu.RUnlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if !ok {
		sort.Strings(names)
		return nil, nil, fmt.Errorf("plugins: %w %q (%s plugins: %s)", ErrUnknownPlugin, name, kind, strings.Join(names, ", "))
	}
	if e.info.Kind != kind {
		return nil, nil, fmt.Errorf("plugins: %w: %q is a %s, not a %s", ErrWrongKind, name, e.info.Kind, kind)
	}
	kv := make([]abi.KV, 0, len(e.info.Parameters))
	for _, p := range e.info.Parameters {
		v := p.Default
		if s, ok := params[p.Key]; ok {
			v = s
		}
		kv = append(kv, abi.KV{Key: p.Key, Value: v})
	}
	for k := range params {
		if !slices.ContainsFunc(e.info.Parameters, func(p abi.Param) bool { return p.Key == k }) {
			keys := make([]string, 0, len(e.info.Parameters))
			for _, p := range e.info.Parameters {
				keys = append(keys, p.Key)
			}
			return nil, nil, fmt.Errorf("plugins: %w: %s has no parameter %q (it has: %s)", ErrBadParameter, name, k, strings.Join(keys, ", "))
		}
	}
	return e, kv, nil
}

// decodeManifest reads and checks a manifest.
func decodeManifest(b []byte) (abi.Manifest, error) {
	var m abi.Manifest
	if err := topics.Unmarshal("manifest", b, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.ABI != abi.Version {
		return m, fmt.Errorf("manifest says ABI %d, this host speaks %d", m.ABI, abi.Version)
	}
	if len(m.Plugins) == 0 {
		return m, fmt.Errorf("manifest lists no plugin")
	}
	seen := map[string]bool{}
	for _, p := range m.Plugins {
		if p.Name == "" || seen[p.Name] {
			return m, fmt.Errorf("manifest: empty or repeated plugin name %q", p.Name)
		}
		seen[p.Name] = true
		if p.Kind != abi.KindMiner && p.Kind != abi.KindAggregator {
			return m, fmt.Errorf("manifest: plugin %q has unknown kind %q", p.Name, p.Kind)
		}
	}
	return m, nil
}

// seedSource gives each call a fresh seed unless the caller fixes one.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var s uint64
	for _, c := range b {
		s = s<<8 | uint64(c)
	}
	return s
}

// ModuleStats counts one module's calls since it was loaded.
type ModuleStats struct {
	Source    string   `json:"source"`
	Plugins   []string `json:"plugins"`
	Calls     uint64   `json:"calls"`
	Failures  uint64   `json:"failures"`  // refused, failed or timed out
	Discarded uint64   `json:"discarded"` // instances closed after a failure
	Recycled  uint64   `json:"recycled"`  // instances closed for their memory
	Instances int      `json:"instances"` // alive now
}

// Stats reports every loaded module, in load order.
func (h *Host) Stats() []ModuleStats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]ModuleStats, 0, len(h.modules))
	for _, m := range h.modules {
		st := ModuleStats{Source: m.source, Calls: m.calls.Load(), Failures: m.failures.Load(),
			Discarded: m.discards.Load(), Recycled: m.recycled.Load(), Instances: len(m.slots)}
		for _, p := range m.manifest.Plugins {
			st.Plugins = append(st.Plugins, p.Name)
		}
		out = append(out, st)
	}
	return out
}
