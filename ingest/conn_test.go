package ingest

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeFails is a real TCP connection whose writes fail, as they do when
// the broker (or the proxy in front of it) is gone while nothing arrives
// to read.
type writeFails struct{ net.Conn }

func (w writeFails) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// A failed write must end a blocked read with an error that paho reports,
// so that it reconnects at once. paho ignores a read error saying "use of
// closed network connection" (it takes it for its own Disconnect): when
// the flusher closed the socket on a write error, the connection was
// declared lost only by the keepalive, 40 s later, with iocd's
// subscription dead meanwhile (the 45 s recovery of broker-sigkill-nats,
// docs/operations.md).
func TestBufferedConnWriteErrorEndsRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c // silent: never writes, never closes
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	defer peer.Close()
	b := newBufferedConn(writeFails{c})
	defer b.Close()

	read := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 16))
		read <- err
	}()
	time.Sleep(50 * time.Millisecond) // the read is blocked on the socket
	if _, err := b.Write([]byte{0x40, 0x02, 0x00, 0x01}); err != nil {
		t.Fatalf("the first write only queues: %v", err)
	}
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("read returned without an error")
		}
		if strings.Contains(err.Error(), "use of closed network connection") {
			t.Fatalf("read error %q is one paho ignores: it would not reconnect", err)
		}
		if !errors.Is(err, syscall.EPIPE) {
			t.Errorf("read error %v, want the write's EPIPE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a failed write left the read blocked")
	}
	if _, err := b.Write([]byte{0}); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("a later write: %v, want EPIPE", err)
	}
}

// puback writes MQTT 3.1.1 PUBACKs between paho's packets, in order, and
// drops them once the connection is closed (the broker redelivers those
// messages to the next session; an id must never be acknowledged on a
// later connection).
func TestBufferedConnPuback(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 10)
		n := 0
		for n < len(buf) {
			m, err := server.Read(buf[n:])
			if err != nil {
				break
			}
			n += m
		}
		got <- buf[:n]
	}()
	if !b.puback(0x1234) {
		t.Fatal("puback on an open connection refused")
	}
	if _, err := b.Write([]byte{0xc0, 0x00}); err != nil { // PINGREQ from paho
		t.Fatal(err)
	}
	if !b.puback(7) {
		t.Fatal("puback on an open connection refused")
	}
	want := []byte{0x40, 0x02, 0x12, 0x34, 0xc0, 0x00, 0x40, 0x02, 0x00, 0x07}
	select {
	case g := <-got:
		if string(g) != string(want) {
			t.Fatalf("wire % x, want % x", g, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written")
	}
	b.Close()
	if b.puback(8) {
		t.Error("puback after Close was queued; it must be dropped")
	}
}
