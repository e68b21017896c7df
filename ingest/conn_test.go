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

// mqttPublish is a PUBLISH packet as a broker sends it (MQTT 3.1.1).
func mqttPublish(topic string, payload []byte, qos byte, id uint16, dup, retain bool) []byte {
	h := byte(0x30) | qos<<1
	if dup {
		h |= 0x08
	}
	if retain {
		h |= 0x01
	}
	var body []byte
	body = append(body, byte(len(topic)>>8), byte(len(topic)))
	body = append(body, topic...)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	body = append(body, payload...)
	pkt := []byte{h}
	for n := len(body); ; {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		pkt = append(pkt, c)
		if n == 0 {
			break
		}
	}
	return append(pkt, body...)
}

// With onPublish set, PUBLISH packets go to it in the connection's order
// and paho reads every other packet, byte for byte; an inMessage's Ack
// writes its PUBACK on that connection (QoS 1 only).
func TestBufferedConnReadsPublish(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBufferedConn(client)
	defer b.Close()
	var got []*inMessage
	b.onPublish = func(m *inMessage) { got = append(got, m) }

	big := []byte(strings.Repeat("x", 300)) // a two-byte remaining length
	connack := []byte{0x20, 0x02, 0x01, 0x00}
	pingresp := []byte{0xd0, 0x00}
	var wire []byte
	wire = append(wire, connack...)
	wire = append(wire, mqttPublish("city/traffic/s1", []byte(`{"a":1}`), 1, 0x0102, false, false)...)
	wire = append(wire, mqttPublish("city/traffic/s2", big, 1, 7, true, false)...)
	wire = append(wire, pingresp...)
	wire = append(wire, mqttPublish("$SYS/broker/x", []byte("5"), 0, 0, false, true)...)
	wire = append(wire, pingresp...)
	go func() { server.Write(wire) }()

	// paho reads a fixed header byte, then the rest (packets.ReadPacket).
	var forPaho []byte
	for len(forPaho) < len(connack)+2*len(pingresp) {
		p := make([]byte, 1)
		if _, err := b.Read(p); err != nil {
			t.Fatal(err)
		}
		forPaho = append(forPaho, p...)
	}
	if want := append(append(append([]byte{}, connack...), pingresp...), pingresp...); string(forPaho) != string(want) {
		t.Fatalf("paho read % x, want % x", forPaho, want)
	}
	if len(got) != 3 {
		t.Fatalf("%d messages, want 3", len(got))
	}
	m := got[0]
	if m.Topic() != "city/traffic/s1" || string(m.Payload()) != `{"a":1}` || m.Qos() != 1 || m.MessageID() != 0x0102 || m.Duplicate() || m.Retained() {
		t.Errorf("first message %+v", m)
	}
	if m := got[1]; m.Topic() != "city/traffic/s2" || string(m.Payload()) != string(big) || m.MessageID() != 7 || !m.Duplicate() {
		t.Errorf("second message: topic %q, %d bytes, id %d, dup %v", m.Topic(), len(m.Payload()), m.MessageID(), m.Duplicate())
	}
	if m := got[2]; m.Topic() != "$SYS/broker/x" || string(m.Payload()) != "5" || m.Qos() != 0 || !m.Retained() {
		t.Errorf("third message %+v", m)
	}

	acks := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 8)
		n := 0
		for n < 4 {
			k, err := server.Read(buf[n:])
			if err != nil {
				break
			}
			n += k
		}
		acks <- buf[:n]
	}()
	got[2].Ack() // QoS 0: nothing
	got[0].Ack()
	select {
	case a := <-acks:
		if want := []byte{0x40, 0x02, 0x01, 0x02}; string(a) != string(want) {
			t.Fatalf("acknowledgement % x, want % x", a, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no PUBACK written")
	}
}

// A PUBLISH that does not parse ends the read with an error (paho then
// drops the connection and reconnects), and reaches no one.
func TestBufferedConnMalformedPublish(t *testing.T) {
	for name, pkt := range map[string][]byte{
		"qos 3":              {0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01},
		"topic past the end": {0x32, 0x04, 0x00, 0x09, 'a', 'b'},
		"no packet id":       {0x32, 0x03, 0x00, 0x01, 'a'},
		"no topic length":    {0x30, 0x01, 0x00},
		"length of 5 bytes":  {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			b := newBufferedConn(client)
			defer b.Close()
			b.onPublish = func(m *inMessage) { t.Errorf("delivered %+v", m) }
			go func() { server.Write(pkt) }()
			if _, err := b.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "mqtt:") {
				t.Fatalf("read error %v, want a malformed-packet error", err)
			}
		})
	}
}

// parsePublish takes any bytes without panicking, and what it accepts
// is what mqttPublish would send.
func FuzzParsePublish(f *testing.F) {
	f.Add(byte(0x32), mqttPublish("city/traffic/s1", []byte(`{"a":1}`), 1, 9, false, false)[2:])
	f.Add(byte(0x30), []byte{0x00, 0x00})
	f.Add(byte(0x3b), []byte{0x00, 0x01, 'a', 0xff, 0xff, 'z'})
	f.Fuzz(func(t *testing.T, h byte, body []byte) {
		h = 0x30 | h&0x0f
		m, err := parsePublish(h, body)
		if err != nil {
			return
		}
		again := mqttPublish(m.Topic(), m.Payload(), m.Qos(), m.MessageID(), m.Duplicate(), m.Retained())
		if got := again[len(again)-len(body):]; string(got) != string(body) || again[0] != h {
			t.Fatalf("parsed %+v from %x % x; re-encoded % x", m, h, body, again)
		}
	})
}
