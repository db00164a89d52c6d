package cloud

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sedna-go/sedna/broker"
)

// TestRelativeReadDirs: directories given relative to where the manager
// starts (`--read-dir run/fl`, `--models-dir models`) are those
// directories; a job's absolute path into them is read. (They were taken
// as prefixes no absolute path has, and every file was "outside".)
func TestRelativeReadDirs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, d := range []string{"run/fl", "models"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f.csv"), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	creds, err := broker.NewCredentials()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Start(Config{DataDir: "state", Broker: BrokerConfig{Listen: "127.0.0.1:0"}, Metrics: "off",
		Data: DataConfig{Dirs: []string{"run/fl"}}, Models: ModelsConfig{Dirs: []string{"models"}}}, Options{Credentials: creds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, d := range []string{"run/fl", "models"} {
		f, err := m.Control().OpenFile(filepath.Join(dir, d, "f.csv"))
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != d {
			t.Fatalf("%s: read %q", d, b)
		}
	}
	if _, err := m.Control().OpenFile(filepath.Join(dir, "state", "x")); err == nil {
		t.Fatal("a file outside the directories was opened")
	}
}
