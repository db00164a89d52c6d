// Command crashy is a test worker: it writes what it was given to
// $OUT_DIR/env-<n>, crashes with exit code 3 on its first run (kept in
// $OUT_DIR/crashed), and on later runs says so on the FIFO $OUT_DIR/ready
// (when there is one) and stays up until SIGTERM, then exits 0.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	dir := os.Getenv("OUT_DIR")
	runs, _ := filepath.Glob(filepath.Join(dir, "env-*"))
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("env-%d", len(runs))))
	if err != nil {
		os.Exit(2)
	}
	fmt.Fprintf(f, "node=%s role=%s job=%s/%s/%s batch_size=%s args=%v\n", os.Getenv("SEDNA_NODE"), os.Getenv("SEDNA_WORKER_ROLE"),
		os.Getenv("SEDNA_JOB_KIND"), os.Getenv("SEDNA_JOB_NAMESPACE"), os.Getenv("SEDNA_JOB_NAME"), os.Getenv("batch_size"), os.Args[1:])
	f.Close()
	if _, err := os.Stat(filepath.Join(dir, "crashed")); err != nil {
		os.WriteFile(filepath.Join(dir, "crashed"), nil, 0o644)
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(3)
	}
	if os.Getenv("MODE") == "finish" {
		fmt.Println("done")
		return
	}
	fmt.Println("running")
	// A test waiting on the FIFO learns that SIGTERM is handled from now on.
	if f, err := os.OpenFile(filepath.Join(dir, "ready"), os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, "ready")
		f.Close()
	}
	<-sig
}
