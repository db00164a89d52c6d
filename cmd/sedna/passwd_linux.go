//go:build linux

package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// askSecret turns the terminal's echo off, then shows prompt and reads a
// line. In that order: a prompt shown while echo is still on lets what is
// typed right after it appear on the screen (a test typing as soon as the
// prompt showed saw its password echoed).
func askSecret(f *os.File, prompt string, w io.Writer) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(w, prompt)
	defer fmt.Fprintln(w)
	return readSecretLine(f)
}
