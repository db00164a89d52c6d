package workers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// DriverKey is the key of Config.Builtins for a driver: a built-in worker
// that runs in place of a template with a command, and runs that command
// itself when and as often as its paradigm needs (once per stage attempt
// of incremental learning, say), through Spec.Command. A role without a
// driver runs its command as a supervised process of its own.
func DriverKey(kind, role string) string { return BuiltinKey(kind, role) + "+command" }

// Command runs a driven worker's command (DriverKey) for its driver, as
// the supervisor runs an external worker: as the workers' user, with
// their environment, its output in the worker's log.
type Command struct {
	s    *Supervisor
	spec Spec
	log  *slog.Logger
}

// OutDir is the subdirectory of a run's directory where the command
// writes what it gives back.
const OutDir = "out"

// Run runs the command once, in its template's workingDir, with env added
// to the environment an external worker gets. dir, when not "", is a
// directory the driver made for the run with its inputs: before the run
// it is given to the workers' user to read (and no one else, when the
// supervisor runs as root), and its subdirectory OutDir (made if missing)
// to write. It returns the exit code; an exit other than 0 is an error
// carrying the end of the command's output.
func (c *Command) Run(ctx context.Context, dir string, env []string) (*int, error) {
	if c.s.runAsErr != nil {
		return nil, c.s.runAsErr
	}
	if dir != "" {
		if err := c.HandOver(dir); err != nil {
			return nil, err
		}
	}
	return c.s.runProcess(ctx, c.spec, c.log, env)
}

// HandOver gives dir (and its OutDir, made if missing) to the workers'
// user as Run does: what the driver writes there while the command runs
// (a newer model, say) needs it too.
func (c *Command) HandOver(dir string) error {
	if c.s.runAsErr != nil {
		return c.s.runAsErr
	}
	if err := os.MkdirAll(filepath.Join(dir, OutDir), 0o700); err != nil {
		return err
	}
	if err := handOver(dir, c.s.cfg.RunAs); err != nil {
		return fmt.Errorf("workers: %s not given to %s: %w", dir, c.s.cfg.RunAs.Name, err)
	}
	return nil
}

// Output reads the file name the command wrote in dir's OutDir: at most
// limit bytes, a regular file (not a link) and, when the command ran as
// another user, one of that user's (a link to someone else's file is not
// an output).
func (c *Command) Output(dir, name string, limit int64) ([]byte, error) {
	f, err := openOutput(filepath.Join(dir, OutDir, name), c.s.cfg.RunAs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("workers: output %s is larger than %d bytes", name, limit)
	}
	return data, nil
}
