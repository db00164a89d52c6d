package plugins

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	csdk "github.com/sedna-go/sedna/plugins/sdk/c"
)

// CFlags are the clang flags of a C plugin: WASI reactor (so the host runs
// _initialize), 128-bit SIMD, no debug information (so that a build is
// byte-for-byte reproducible wherever it runs).
var CFlags = []string{"--target=wasm32-wasi", "-O2", "-msimd128", "-mexec-model=reactor",
	"-Wl,--strip-all", "-Wall", "-Wextra", "-Wno-unused-parameter"}

// Build compiles the plugin in dir to out (default dir/<dir name>.wasm) and
// returns the output path. A directory with .go files is a Go plugin (built
// with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, the go tool on PATH); one
// with .c files is a C plugin (clang with wasi-libc; the SDK header is
// supplied). Compiler output comes back in the error.
func Build(ctx context.Context, dir, out string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if out == "" {
		out = filepath.Join(abs, filepath.Base(abs)+".wasm")
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", err
	}
	goFiles, _ := filepath.Glob(filepath.Join(abs, "*.go"))
	cFiles, _ := filepath.Glob(filepath.Join(abs, "*.c"))
	var cmd *exec.Cmd
	switch {
	case len(goFiles) > 0:
		cmd = exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	case len(cFiles) > 0:
		inc, err := os.MkdirTemp("", "sedna-csdk-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(inc)
		if err := os.WriteFile(filepath.Join(inc, "sedna_plugin.h"), csdk.Header, 0o644); err != nil {
			return "", err
		}
		sort.Strings(cFiles)
		args := append(append([]string{}, CFlags...), "-I", inc, "-o", out)
		for _, f := range cFiles {
			args = append(args, filepath.Base(f))
		}
		cmd = exec.CommandContext(ctx, "clang", args...)
	default:
		return "", fmt.Errorf("plugin build: %s holds no .go or .c files", dir)
	}
	cmd.Dir = abs
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		hint := ""
		if _, lerr := exec.LookPath(cmd.Args[0]); lerr != nil {
			hint = " (C plugins need Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32)"
		}
		return "", fmt.Errorf("plugin build %s: %s: %v%s\n%s", dir, cmd.Args[0], err, hint, msg.String())
	}
	return out, nil
}
