package streams

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The frames the writer makes by hand are read by gorilla's client as the
// text messages they carry, at each length encoding (7-bit, 16-bit,
// 64-bit) and its edges.
func TestWireFrameReadsAsTextMessages(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 300000}
	payload := func(n int) []byte {
		b := bytes.Repeat([]byte("xé"), n/3+1) // multi-byte UTF-8 too
		for len(b) > n {                       // cut on a rune boundary, pad with ASCII
			b = b[:len(b)-1]
		}
		for !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
		return append(b, bytes.Repeat([]byte("a"), n-len(b))...)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, n := range sizes {
			if _, err := conn.NetConn().Write(wireFrame(payload(n))); err != nil {
				return
			}
		}
		conn.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range sizes {
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("frame of %d bytes: %v", n, err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, payload(n)) {
			t.Errorf("frame of %d bytes: got type %d, %d bytes", n, typ, len(got))
		}
	}
}
