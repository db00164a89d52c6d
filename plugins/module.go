package plugins

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/sedna-go/sedna/plugins/abi"
	"github.com/sedna-go/sedna/topics"
)

// The exports of ABI v1. mine and aggregate are needed only by modules
// holding plugins of that kind.
var requiredExports = []string{"abi_version", "alloc", "free", "manifest"}

// module is one compiled plugin module and its pool of instances.
type module struct {
	h        *Host
	source   string
	compiled wazero.CompiledModule
	manifest abi.Manifest
	caps     []string

	idle    chan *instance // instances ready for a call
	slots   chan struct{}  // one token per instance that may exist
	closing atomic.Bool

	calls, failures, discards, recycled atomic.Uint64
}

// instance is one instantiated module: one call at a time.
type instance struct {
	mod             api.Module
	mem             api.Memory
	alloc, free     api.Function
	mine, aggregate api.Function
	inPtr, inCap    uint32
	stack           []uint64
	stderr, stdout  *guestLog
}

func (h *Host) open(ctx context.Context, source string, wasm []byte) (*module, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, fmt.Errorf("plugins: %s: %w: not a WebAssembly module", source, ErrBadModule)
	}
	compiled, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("plugins: %s: %w: %v", source, ErrBadModule, err)
	}
	exports := compiled.ExportedFunctions()
	for _, name := range requiredExports {
		if _, ok := exports[name]; !ok {
			compiled.Close(ctx)
			return nil, fmt.Errorf("plugins: %s: %w: missing export %q (ABI v%d needs %v)", source, ErrBadModule, name, abi.Version, requiredExports)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		compiled.Close(ctx)
		return nil, fmt.Errorf("plugins: %s: %w: exports no memory", source, ErrBadModule)
	}
	m := &module{
		h: h, source: source, compiled: compiled,
		idle:  make(chan *instance, h.cfg.MaxInstances),
		slots: make(chan struct{}, h.cfg.MaxInstances),
	}
	// The first instance reads the manifest with no capability at all.
	inst, err := m.instantiate(ctx)
	if err != nil {
		compiled.Close(ctx)
		return nil, fmt.Errorf("plugins: %s: %w: %v", source, ErrBadModule, err)
	}
	bad := func(err error) (*module, error) {
		inst.mod.Close(ctx)
		compiled.Close(ctx)
		return nil, fmt.Errorf("plugins: %s: %w: %v", source, ErrBadModule, err)
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
	defer cancel()
	res, err := inst.mod.ExportedFunction("abi_version").Call(cctx)
	if err != nil {
		return bad(fmt.Errorf("abi_version: %w", err))
	}
	if len(res) != 1 || uint32(res[0]) != abi.Version {
		return bad(fmt.Errorf("abi_version returned %v, this host speaks ABI v%d", res, abi.Version))
	}
	res, err = inst.mod.ExportedFunction("manifest").Call(cctx)
	if err != nil {
		return bad(fmt.Errorf("manifest: %w", err))
	}
	if len(res) != 1 {
		return bad(errors.New("manifest returned no ptr<<32|len"))
	}
	raw, ok := inst.mem.Read(uint32(res[0]>>32), uint32(res[0]))
	if !ok || res[0] == 0 {
		return bad(fmt.Errorf("manifest at %#x is outside the guest's memory", res[0]))
	}
	man, err := decodeManifest(raw)
	if err != nil {
		return bad(err)
	}
	_, _ = inst.free.Call(cctx, res[0]>>32, uint64(uint32(res[0])))
	for _, p := range man.Plugins {
		fn := "mine"
		if p.Kind == abi.KindAggregator {
			fn = "aggregate"
		}
		if _, ok := exports[fn]; !ok {
			return bad(fmt.Errorf("plugin %q is a %s but the module exports no %q", p.Name, p.Kind, fn))
		}
		for _, c := range p.Capabilities {
			if !slices.Contains([]string{CapClock, CapRandom, CapEnv, CapFS}, c) {
				return bad(fmt.Errorf("plugin %q asks for unknown capability %q", p.Name, c))
			}
			if !slices.Contains(h.cfg.Allow, c) {
				return bad(fmt.Errorf("plugin %q asks for capability %q, which the host's configuration does not allow", p.Name, c))
			}
			if !slices.Contains(m.caps, c) {
				m.caps = append(m.caps, c)
			}
		}
	}
	m.manifest = man
	if len(m.caps) > 0 {
		// Instances that serve calls get the granted capabilities.
		inst.mod.Close(ctx)
	} else {
		m.slots <- struct{}{}
		m.idle <- inst
	}
	return m, nil
}

// instantiate makes a fresh instance with the module's capabilities.
func (m *module) instantiate(ctx context.Context) (*instance, error) {
	name := m.source
	if len(m.manifest.Plugins) > 0 {
		name = m.manifest.Plugins[0].Name
	}
	stderr := &guestLog{log: m.h.log, source: m.source, stream: "stderr"}
	stdout := &guestLog{log: m.h.log, source: m.source, stream: "stdout"}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module
		WithStartFunctions().
		WithStderr(stderr).
		WithStdout(stdout).
		WithArgs(name)
	for _, c := range m.caps {
		switch c {
		case CapClock:
			cfg = cfg.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
		case CapRandom:
			cfg = cfg.WithRandSource(rand.Reader)
		case CapEnv:
			for k, v := range m.h.cfg.Env {
				cfg = cfg.WithEnv(k, v)
			}
		case CapFS:
			if m.h.cfg.FSRoot != "" {
				cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithReadOnlyDirMount(m.h.cfg.FSRoot, "/"))
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, m.h.cfg.CallTimeout)
	defer cancel()
	mod, err := m.h.rt.InstantiateModule(cctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	// Reactors (Go's c-shared, wasi-libc's reactor model) set themselves up
	// in _initialize, which must run before any other export.
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if _, err := f.Call(cctx); err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("_initialize: %w", err)
		}
	}
	inst := &instance{
		mod: mod, mem: mod.Memory(),
		alloc: mod.ExportedFunction("alloc"), free: mod.ExportedFunction("free"),
		mine: mod.ExportedFunction("mine"), aggregate: mod.ExportedFunction("aggregate"),
		stack:  make([]uint64, 2),
		stderr: stderr, stdout: stdout,
	}
	return inst, nil
}

// acquire takes an idle instance, or makes one while the module is under its
// limit, or waits for one.
func (m *module) acquire(ctx context.Context) (*instance, error) {
	for {
		if m.closing.Load() {
			return nil, ErrClosed
		}
		select {
		case inst := <-m.idle:
			return inst, nil
		default:
		}
		select {
		case inst := <-m.idle:
			return inst, nil
		case m.slots <- struct{}{}:
			inst, err := m.instantiate(ctx)
			if err != nil {
				<-m.slots
				return nil, fmt.Errorf("%w: %s: %v", ErrPluginFailed, m.source, err)
			}
			return inst, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release returns a healthy instance to the pool, unless its memory grew
// past the recycling size.
func (m *module) release(ctx context.Context, inst *instance) {
	if inst.mem.Size() > m.h.cfg.RecycleBytes {
		m.recycled.Add(1)
		m.discard(ctx, inst, nil)
		return
	}
	if m.closing.Load() {
		m.discard(ctx, inst, nil)
		return
	}
	m.idle <- inst
}

// discard closes an instance that failed; the next call gets a fresh one.
func (m *module) discard(ctx context.Context, inst *instance, why error) {
	_ = inst.mod.Close(context.WithoutCancel(ctx))
	<-m.slots
	if why != nil {
		m.discards.Add(1)
		m.h.log.Warn("plugin instance discarded", "module", m.source, "err", why)
	}
}

func (m *module) close(ctx context.Context) {
	m.closing.Store(true)
	for {
		select {
		case inst := <-m.idle:
			m.discard(ctx, inst, nil)
		default:
			m.compiled.Close(ctx)
			return
		}
	}
}

// call runs one export of the module on a request frame and hands the
// decoded response to read, which must copy what it keeps: the frame aliases
// guest memory.
func (m *module) call(ctx context.Context, plugin, export string, in *abi.Frame, read func(abi.Frame, response) error) error {
	m.calls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, m.h.cfg.CallTimeout)
	defer cancel()
	inst, err := m.acquire(ctx)
	if err != nil {
		m.failures.Add(1)
		return err
	}
	inst.stderr.setPlugin(plugin)
	inst.stdout.setPlugin(plugin)
	err = inst.run(ctx, export, in, read)
	if err == nil {
		m.release(ctx, inst)
		return nil
	}
	m.failures.Add(1)
	var rejected rejectedError
	if errors.As(err, &rejected) {
		m.release(ctx, inst) // the plugin answered: the instance is healthy
		return fmt.Errorf("%w: %s", ErrRejected, rejected.text)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("deadline of %v exceeded: %w", m.h.cfg.CallTimeout, err)
	}
	m.discard(ctx, inst, err)
	return fmt.Errorf("%w: %s: %v", ErrPluginFailed, m.source, err)
}

type rejectedError struct{ text string }

func (e rejectedError) Error() string { return e.text }

// response is the metadata of a call's result.
type response struct {
	Error    string            `msgpack:"error"`
	Reasons  []reason          `msgpack:"reasons"`
	Metadata map[string]string `msgpack:"metadata"`
}

// reason is one [index, text] pair of a response.
type reason struct {
	Index int
	Text  string
}

// DecodeMsgpack reads the pair as the two-element array it is on the wire.
func (r *reason) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("reason: want [index, text], found %d elements", n)
	}
	if r.Index, err = dec.DecodeInt(); err != nil {
		return err
	}
	r.Text, err = dec.DecodeString()
	return err
}

func (inst *instance) run(ctx context.Context, export string, in *abi.Frame, read func(abi.Frame, response) error) error {
	fn := inst.mine
	if export == "aggregate" {
		fn = inst.aggregate
	}
	if fn == nil {
		return fmt.Errorf("module exports no %q", export)
	}
	size := in.Size()
	if size > int(^uint32(0)>>1) {
		return rejectedError{fmt.Sprintf("input of %d bytes is too large", size)}
	}
	if uint32(size) > inst.inCap {
		if inst.inCap > 0 {
			inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(inst.inCap)
			if err := inst.free.CallWithStack(ctx, inst.stack); err != nil {
				return fmt.Errorf("free: %w", err)
			}
		}
		inst.stack[0] = uint64(size)
		if err := inst.alloc.CallWithStack(ctx, inst.stack); err != nil {
			return fmt.Errorf("alloc(%d): %w", size, err)
		}
		inst.inPtr, inst.inCap = uint32(inst.stack[0]), uint32(size)
		if inst.inPtr == 0 {
			inst.inCap = 0
			return fmt.Errorf("alloc(%d) returned null: out of guest memory", size)
		}
	}
	view, ok := inst.mem.Read(inst.inPtr, uint32(size))
	if !ok {
		return fmt.Errorf("alloc returned %#x, outside the guest's memory", inst.inPtr)
	}
	// Encode straight into guest memory: no second copy of the tensors.
	if enc := in.AppendTo(view[:0]); len(enc) != size || &enc[0] != &view[0] {
		return fmt.Errorf("frame encoding size mismatch")
	}
	inst.stack[0], inst.stack[1] = uint64(inst.inPtr), uint64(size)
	if err := fn.CallWithStack(ctx, inst.stack); err != nil {
		var exit *sys.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
			return fmt.Errorf("stopped at the deadline: %w", err)
		}
		return err
	}
	res := inst.stack[0]
	ptr, n := uint32(res>>32), uint32(res)
	if res == 0 {
		return errors.New("returned no result (out of guest memory?)")
	}
	out, ok := inst.mem.Read(ptr, n)
	if !ok {
		return fmt.Errorf("result at %#x (+%d bytes) is outside the guest's memory of %d bytes", ptr, n, inst.mem.Size())
	}
	frame, err := abi.Decode(out)
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	var meta response
	if len(frame.Meta) > 0 {
		// Bounded (topics.Unmarshal): a plugin's answer nested eight
		// million levels deep overflowed the host's stack.
		if err := topics.Unmarshal("result metadata", frame.Meta, &meta); err != nil {
			return fmt.Errorf("result metadata: %w", err)
		}
	}
	var readErr error
	if meta.Error != "" {
		readErr = rejectedError{meta.Error}
	} else {
		readErr = read(frame, meta)
	}
	inst.stack[0], inst.stack[1] = uint64(ptr), uint64(n)
	if err := inst.free.CallWithStack(ctx, inst.stack); err != nil {
		return fmt.Errorf("free: %w", err)
	}
	return readErr
}

// guestLog sends a guest's output lines to the log with the plugin's and
// the module's names.
type guestLog struct {
	log    *slog.Logger
	source string
	stream string
	mu     sync.Mutex
	plugin string
	buf    []byte
}

func (g *guestLog) setPlugin(name string) {
	g.mu.Lock()
	g.plugin = name
	g.mu.Unlock()
}

func (g *guestLog) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buf = append(g.buf, p...)
	for {
		i := bytes.IndexByte(g.buf, '\n')
		if i < 0 {
			break
		}
		g.log.Info("plugin output", "plugin", g.plugin, "module", g.source, "stream", g.stream, "line", string(g.buf[:i]))
		g.buf = g.buf[i+1:]
	}
	if len(g.buf) > 4096 { // a guest that never ends a line
		g.log.Info("plugin output", "plugin", g.plugin, "module", g.source, "stream", g.stream, "line", string(g.buf))
		g.buf = g.buf[:0]
	}
	return len(p), nil
}
