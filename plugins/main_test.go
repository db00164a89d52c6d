package plugins_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sedna-go/sedna/plugins"
)

// cacheDir is one compilation cache shared by the package's tests, as the
// agents share one per process.
var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "sedna-plugins-test-")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// logBuffer collects a host's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newHost(t testing.TB, cfg plugins.Config) (*plugins.Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	h, err := plugins.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("plugins.New: %v", err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, logs
}

// goPlugins builds the Go guests once per test binary: the third-party
// example and the hostile one.
var goPlugins = struct {
	once        sync.Once
	margin, bad string
	err         error
}{}

func buildGoPlugins(t testing.TB) (margin, bad string) {
	t.Helper()
	goPlugins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out := filepath.Join(cacheDir, "go")
		if goPlugins.margin, goPlugins.err = plugins.Build(ctx, "../examples/plugins/go-margin", filepath.Join(out, "margin.wasm")); goPlugins.err != nil {
			return
		}
		goPlugins.bad, goPlugins.err = plugins.Build(ctx, "testdata/hostile/gobad", filepath.Join(out, "gobad.wasm"))
	})
	if goPlugins.err != nil {
		t.Fatal(goPlugins.err)
	}
	return goPlugins.margin, goPlugins.bad
}
