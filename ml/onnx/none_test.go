//go:build !onnx || !cgo

package onnx

import (
	"errors"
	"strings"
	"testing"
)

// TestLoadWithoutRuntime checks what a pure-Go build says of an ONNX
// model: ErrNoRuntime, in one line naming the binary that serves it.
func TestLoadWithoutRuntime(t *testing.T) {
	_, err := Load([]byte{8, 8}, Options{})
	if !errors.Is(err, ErrNoRuntime) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "sedna-onnx") {
		t.Fatalf("got %v", err)
	}
	if Available() == nil || Built {
		t.Fatal("a build without the onnx tag says it serves ONNX")
	}
}
