package ingest_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"ioc/deploy/brokertest"
)

func confValues(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 && !strings.HasPrefix(fs[0], "#") {
			vals[fs[0]] = fs[1]
		}
	}
	return vals
}

// Finding 5: both broker configurations cap in-flight bytes (what iocd
// holds), queued bytes (what the broker holds) and packet size (the
// contract's 256 KiB plus headroom), in the options Mosquitto 2 reads.
func TestBrokerConfigsCapBytes(t *testing.T) {
	deploy := filepath.Dir(brokertest.ConfigPath())
	for _, path := range []string{brokertest.ConfigPath(), filepath.Join(deploy, "mosquitto", "secure.conf")} {
		v := confValues(t, path)
		num := func(key string) int {
			n, err := strconv.Atoi(v[key])
			if err != nil {
				t.Errorf("%s: %s = %q", path, key, v[key])
			}
			return n
		}
		if n := num("max_inflight_bytes"); n <= 0 || n > 64<<20 {
			t.Errorf("%s: max_inflight_bytes %d, want 1 B-64 MiB", path, n)
		}
		if n := num("max_queued_bytes"); n <= 0 || n > 4<<30 {
			t.Errorf("%s: max_queued_bytes %d, want 1 B-4 GiB", path, n)
		}
		if n := num("max_packet_size"); n <= 256<<10 || n > 512<<10 {
			t.Errorf("%s: max_packet_size %d, want above 256 KiB, at most 512 KiB", path, n)
		}
		if s, ok := v["message_size_limit"]; ok {
			t.Errorf("%s: message_size_limit %s: Mosquitto 2 reads max_packet_size", path, s)
		}
	}
}

// Finding 10: no service account may publish as any device: whoever can
// write city/# can invent device ids without end.
func TestServiceACLGrantsNoDeviceWrites(t *testing.T) {
	f, err := os.Open(filepath.Join(filepath.Dir(brokertest.ConfigPath()), "mosquitto", "services.acl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	user := "(anonymous)"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 2 && fs[0] == "user":
			user = fs[1]
		case len(fs) >= 2 && (fs[0] == "topic" || fs[0] == "pattern"):
			access, topic := "readwrite", fs[len(fs)-1]
			if len(fs) == 3 {
				access = fs[1]
			}
			if access != "read" && access != "deny" && (strings.HasPrefix(topic, "city/") || topic == "#") {
				t.Errorf("services.acl: %s may %s %s", user, access, topic)
			}
		}
	}
}

// The quick-start broker refuses a packet beyond max_packet_size (and
// disconnects its sender) instead of reading it into memory and passing
// it on; a payload within it still reaches iocd (and is recorded as
// too_large: TestBadInputOverMQTT).
func TestBrokerRefusesHugePackets(t *testing.T) {
	b := brokertest.Start(t)
	got := make(chan string, 4)
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(fmt.Sprintf("huge-sub-%d", os.Getpid())))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("city/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- fmt.Sprintf("%s %d", m.Topic(), len(m.Payload())) }); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe")
	}
	publish := func(id, topic string, size int) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(id).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		defer c.Disconnect(100)
		c.Publish(topic, 1, false, make([]byte, size)).WaitTimeout(3 * time.Second)
	}
	publish("huge-pub", "city/traffic/HUGE", 1<<20)
	publish("ok-pub", "city/traffic/OK", 300<<10)
	select {
	case m := <-got:
		if m != fmt.Sprintf("city/traffic/OK %d", 300<<10) {
			t.Fatalf("delivered %s, want only the 300 KiB payload", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the 300 KiB payload was not delivered")
	}
	select {
	case m := <-got:
		t.Errorf("also delivered %s", m)
	case <-time.After(300 * time.Millisecond):
	}
}
