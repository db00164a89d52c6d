package netfault_test

import (
	"fmt"
	"io"
	"log"
	"net"

	"github.com/sedna-go/sedna/internal/netfault"
)

// echo starts a TCP echo server on 127.0.0.1 and returns its listener.
func echo() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// ping sends "ping" on c and returns what comes back, or the error.
func ping(c net.Conn) string {
	if _, err := io.WriteString(c, "ping"); err != nil {
		return err.Error()
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err.Error()
	}
	return string(buf)
}

// A proxy in front of an echo server: the link is cut, then restored.
func Example() {
	server := echo()
	defer server.Close()

	p, err := netfault.New(server.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("link up:", ping(c))

	p.SetDown(true)
	_, err = c.Read(make([]byte, 1))
	fmt.Println("open connection after cut:", err)
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer c2.Close()
	_, err = c2.Read(make([]byte, 1))
	fmt.Println("new connection while down:", err)

	p.SetDown(false)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer c3.Close()
	fmt.Println("link up again:", ping(c3))
	fmt.Println("refused while down:", p.Stats().Refused)

	// Output:
	// link up: ping
	// open connection after cut: EOF
	// new connection while down: EOF
	// link up again: ping
	// refused while down: 1
}
