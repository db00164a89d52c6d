//go:build !linux

package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// askSecret shows prompt and reads a line without echo.
func askSecret(f *os.File, prompt string, w io.Writer) ([]byte, error) {
	fmt.Fprint(w, prompt)
	defer fmt.Fprintln(w)
	return term.ReadPassword(int(f.Fd()))
}
