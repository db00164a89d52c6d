package e2e

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestPasswdAsksWithoutEcho runs `sedna passwd` on a terminal (a pseudo
// terminal from util-linux's script): it asks twice, the password typed
// after each prompt is not echoed, and the hash it prints is the
// password's.
func TestPasswdAsksWithoutEcho(t *testing.T) {
	const secret = "not-echoed-42"
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script (util-linux) is not installed")
	}
	cmd := exec.Command("script", "-qec", sednaBin+" passwd", "/dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	var seen strings.Builder
	// upTo reads the terminal's output until it shows want.
	upTo := func(want string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			for !strings.Contains(seen.String(), want) {
				b, err := out.ReadByte()
				if err != nil {
					done <- err
					return
				}
				seen.WriteByte(b)
			}
			done <- nil
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("waiting for %q: %v; the terminal showed %q", want, err, seen.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("no %q; the terminal showed %q", want, seen.String())
		}
	}
	upTo("Password: ")
	if _, err := io.WriteString(stdin, secret+"\n"); err != nil {
		t.Fatal(err)
	}
	upTo("Again: ")
	if _, err := io.WriteString(stdin, secret+"\n"); err != nil {
		t.Fatal(err)
	}
	upTo("$2a$")
	rest, err := out.ReadString('\n') // the rest of the hash
	if err != nil {
		t.Fatalf("the hash's line: %v; the terminal showed %q", err, seen.String())
	}
	seen.WriteString(rest)
	if strings.Contains(seen.String(), secret) {
		t.Fatalf("the password was echoed: %q", seen.String())
	}
	hash := strings.TrimSpace(seen.String()[strings.Index(seen.String(), "$2a$"):])
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)); err != nil {
		t.Fatalf("the hash %q is not the password's: %v", hash, err)
	}
}
