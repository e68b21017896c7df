package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func deployDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "deploy", "mosquitto")
}

func needTool(t *testing.T, name string, alt ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range alt {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("IOC_TEST_ALLOW_SKIP") == "1" {
		t.Skipf("%s not installed", name)
	}
	t.Fatalf("%s not installed (apt-get install mosquitto mosquitto-clients)", name)
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, PEM, into dir.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ioc test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.crt", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(2 + i)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		write(name+".crt", "CERTIFICATE", der)
		write(name+".key", "EC PRIVATE KEY", kder)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type secureBroker struct {
	devicesURL, servicesURL string
	dir                     string
	cmd                     *exec.Cmd
}

// startSecureBroker runs deploy/mosquitto/secure.conf with its listeners
// moved to free ports and /etc/mosquitto/ioc/ moved to a temporary
// directory holding a fresh PKI, the deploy ACL files and the accounts
// that add-device.sh makes.
func startSecureBroker(t *testing.T) *secureBroker {
	t.Helper()
	return startSecureBrokerWith(t, nil)
}

// startSecureBrokerWith is startSecureBroker with secure.conf's text
// passed through rewrite first.
func startSecureBrokerWith(t *testing.T, rewrite func(string) string) *secureBroker {
	t.Helper()
	bin := needTool(t, "mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
	needTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	// Started as root, the broker drops to the mosquitto user before it
	// reads the password files: let it in.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	os.MkdirAll(filepath.Join(dir, "tls"), 0o755)
	writeTestPKI(t, filepath.Join(dir, "tls"))
	for _, f := range []string{"devices.passwd", "services.passwd"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o644)
	}
	for _, f := range []string{"devices.acl", "services.acl"} {
		b, err := os.ReadFile(filepath.Join(deployDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	raw, err := os.ReadFile(filepath.Join(deployDir(), "secure.conf"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if rewrite != nil {
		text = rewrite(text)
	}
	devPort, svcPort := freePort(t), freePort(t)
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "listener" && f[1] == "8883":
			l = fmt.Sprintf("listener %d 127.0.0.1", devPort)
		case len(f) == 2 && f[0] == "listener" && f[1] == "8884":
			l = fmt.Sprintf("listener %d 127.0.0.1", svcPort)
		case len(f) > 0 && f[0] == "listener":
			t.Fatalf("secure.conf has a listener the test does not know: %q", l)
		case len(f) > 0 && (f[0] == "persistence" || f[0] == "persistence_location"):
			continue
		}
		lines = append(lines, strings.ReplaceAll(l, "/etc/mosquitto/ioc/", dir+"/"))
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\nlog_dest stderr\n"), 0o644)

	b := &secureBroker{
		devicesURL:  fmt.Sprintf("ssl://127.0.0.1:%d", devPort),
		servicesURL: fmt.Sprintf("ssl://127.0.0.1:%d", svcPort),
		dir:         dir,
	}
	b.cmd = exec.Command(bin, "-c", conf)
	log := &lockedBuffer{}
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if os.Getenv("IOC_TEST_LOG") != "" {
		b.cmd.Stdout, b.cmd.Stderr = os.Stderr, os.Stderr
	}
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.cmd.Process.Kill(); b.cmd.Wait() })
	for _, port := range []int{devPort, svcPort} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("secure mosquitto did not listen on %d: %s", port, log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return b
}

// addDevice runs deploy/mosquitto/add-device.sh and returns the password.
func (b *secureBroker) addDevice(t *testing.T, kind, id string) string {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(deployDir(), "add-device.sh"), kind, id)
	cmd.Env = append(os.Environ(), "IOC_MQTT_DEVICES_PASSWD="+filepath.Join(b.dir, "devices.passwd"),
		"IOC_MQTT_DEVICES_ACL="+filepath.Join(b.dir, "devices.acl"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("add-device.sh %s %s: %v", kind, id, err)
	}
	pw := strings.TrimSpace(string(out))
	if len(pw) < 20 {
		t.Fatalf("add-device.sh printed %q", out)
	}
	os.Chmod(filepath.Join(b.dir, "devices.passwd"), 0o644)
	return pw
}

func (b *secureBroker) addService(t *testing.T, user, password string) {
	t.Helper()
	f := filepath.Join(b.dir, "services.passwd")
	cmd := exec.Command("mosquitto_passwd", f, user)
	cmd.Stdin = strings.NewReader(password + "\n" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
}

// reload makes the broker re-read password files and ACLs.
func (b *secureBroker) reload(t *testing.T) {
	b.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
}

func dial(url, user, password, clientID string, tc *tls.Config) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(password).
		SetTLSConfig(tc).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

func TestSecureBroker(t *testing.T) {
	b := startSecureBrokerWith(t, func(s string) string {
		if os.Getenv("IOC_TEST_LOG") != "" {
			s = strings.Replace(s, "log_type notice", "log_type all", 1)
		}
		return s
	})
	ts := b.addDevice(t, "traffic", "ts-001")
	cam := b.addDevice(t, "camera", "cam-9")
	b.addService(t, "iocd", "service-secret-password")
	b.reload(t)
	ca := filepath.Join(b.dir, "tls", "ca.crt")
	tc, err := MQTTTLSConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}

	// Refused at CONNECT.
	for _, c := range []struct{ url, user, pw, why string }{
		{b.devicesURL, "ts-001", "wrong-password", "wrong password"},
		{b.devicesURL, "ts-001", "", "no password"},
		{b.devicesURL, "nobody", ts, "unknown user"},
		{b.devicesURL, "", "", "anonymous"},
		{b.servicesURL, "ts-001", ts, "device on the service listener"},
		{b.devicesURL, "ts-001", cam, "another device's password"},
	} {
		if cl, err := dial(c.url, c.user, c.pw, "x-"+c.user, tc); err == nil {
			cl.Disconnect(0)
			t.Errorf("%s: connected", c.why)
		}
	}
	// Without the CA the broker's certificate is not trusted.
	if cl, err := dial(b.devicesURL, "ts-001", ts, "ts-001", &tls.Config{MinVersion: tls.VersionTLS12}); err == nil {
		cl.Disconnect(0)
		t.Error("connected without trusting the broker's CA")
	}

	// The service account sees everything, also through a shared
	// subscription (one client each, so each gets one copy).
	var mu sync.Mutex
	got := map[string][]string{}
	sentinel := make(chan struct{}, 8)
	for i, filter := range []string{"city/#", "$share/ioc/city/#"} {
		filter := filter
		svc, err := dial(b.servicesURL, "iocd", "service-secret-password", fmt.Sprintf("iocd-test-%d", i), tc)
		if err != nil {
			t.Fatalf("service connect: %v", err)
		}
		defer svc.Disconnect(0)
		tok := svc.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
			mu.Lock()
			got[filter] = append(got[filter], m.Topic()+" "+string(m.Payload()))
			mu.Unlock()
			if string(m.Payload()) == "sentinel" {
				sentinel <- struct{}{}
			}
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
		if q := tok.(*mqtt.SubscribeToken).Result()[filter]; q == 0x80 {
			t.Fatalf("service refused subscription %s", filter)
		}
	}

	dev, err := dial(b.devicesURL, "ts-001", ts, "whatever-id", tc)
	if err != nil {
		t.Fatalf("device connect: %v", err)
	}
	defer dev.Disconnect(0)
	camc, err := dial(b.devicesURL, "cam-9", cam, "cam-9", tc)
	if err != nil {
		t.Fatalf("camera connect: %v", err)
	}
	defer camc.Disconnect(0)
	// A device may not subscribe.
	tok := dev.Subscribe("city/#", 1, func(mqtt.Client, mqtt.Message) { t.Error("device received a message") })
	tok.WaitTimeout(5 * time.Second)
	if q := tok.(*mqtt.SubscribeToken).Result()["city/#"]; q != 0x80 {
		t.Logf("device subscription to city/# granted QoS %d (no messages may arrive)", q)
	}

	pub := func(c mqtt.Client, topic, payload string) {
		tok := c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub(dev, "city/traffic/cam-9", "forged-other-id")
	pub(dev, "city/camera/ts-001", "forged-other-kind")
	pub(dev, "city/status/cam-9", "forged-status")
	pub(dev, "city/traffic/ts-001/extra", "forged-subtopic")
	pub(dev, "city/traffic/ts-001", "own-reading")
	pub(dev, "city/status/ts-001", "own-status")
	pub(dev, "city/traffic/ts-001", "sentinel")
	for range 2 {
		select {
		case <-sentinel:
		case <-time.After(10 * time.Second):
			t.Fatal("authorised publish not delivered to the service")
		}
	}
	// The camera's connection survived ts-001 connecting with another
	// client id (ids are forced to the user name).
	if !camc.IsConnectionOpen() {
		t.Error("cam-9 was disconnected")
	}
	pub(camc, "city/camera/cam-9", "sentinel")
	for range 2 {
		select {
		case <-sentinel:
		case <-time.After(10 * time.Second):
			t.Fatal("camera publish not delivered")
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for filter, msgs := range got {
		all := strings.Join(msgs, "\n")
		if strings.Contains(all, "forged") {
			t.Errorf("%s: unauthorised publish delivered:\n%s", filter, all)
		}
		for _, want := range []string{"city/traffic/ts-001 own-reading", "city/status/ts-001 own-status", "city/camera/cam-9 sentinel"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: missing %q in\n%s", filter, want, all)
			}
		}
	}
}

func TestAddDeviceRefusesBadInput(t *testing.T) {
	needTool(t, "mosquitto_passwd")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"drone", "d1"}, {"traffic", "a/b"}, {"traffic", "+"}, {"traffic", "#"}, {"traffic", ""},
		{"traffic", strings.Repeat("x", 65)}, {"traffic", "x\nuser iocd"}, {"traffic"},
	} {
		cmd := exec.Command("sh", append([]string{filepath.Join(deployDir(), "add-device.sh")}, args...)...)
		cmd.Env = append(os.Environ(), "IOC_MQTT_DEVICES_PASSWD="+filepath.Join(dir, "p"), "IOC_MQTT_DEVICES_ACL="+filepath.Join(dir, "acl"))
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("add-device.sh %q accepted: %s", args, out)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "acl")); len(b) != 0 {
		t.Errorf("ACL written by refused calls: %s", b)
	}
}

func TestMQTTTLSConfig(t *testing.T) {
	dir := t.TempDir()
	writeTestPKI(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	c, err := MQTTTLSConfig(p("ca.crt"), p("client.crt"), p("client.key"))
	if err != nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("full config: %+v %v", c, err)
	}
	if c, err := MQTTTLSConfig("", "", ""); err != nil || c.RootCAs != nil {
		t.Fatalf("empty config: %v", err)
	}
	for _, bad := range [][3]string{
		{p("missing"), "", ""}, {p("client.key"), "", ""}, {"", p("client.crt"), ""}, {"", p("client.crt"), p("ca.crt")},
	} {
		if _, err := MQTTTLSConfig(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	broker, user, pw, err := MQTTCredentials("ssl://iocd:s%40cret@broker:8884")
	if err != nil || broker != "ssl://broker:8884" || user != "iocd" || pw != "s@cret" {
		t.Fatalf("credentials: %q %q %q %v", broker, user, pw, err)
	}
}

// With require_certificate on the service listener, iocd connects with a
// client certificate from MQTTTLSConfig, and without one it cannot.
func TestSecureBrokerClientCertificate(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir(), "secure.conf"))
	if err != nil || !strings.Contains(string(raw), "#require_certificate true") {
		t.Fatal("secure.conf lost its require_certificate line")
	}
	// Turn it on by rewriting the commented line in a copy of the deploy dir.
	b := startSecureBrokerWith(t, func(s string) string {
		return strings.Replace(s, "#require_certificate true", "require_certificate true", 1)
	})
	b.addService(t, "iocd", "service-secret-password")
	b.reload(t)
	p := func(n string) string { return filepath.Join(b.dir, "tls", n) }
	noCert, _ := MQTTTLSConfig(p("ca.crt"), "", "")
	if cl, err := dial(b.servicesURL, "iocd", "service-secret-password", "iocd-a", noCert); err == nil {
		cl.Disconnect(0)
		t.Error("connected without a client certificate")
	}
	withCert, err := MQTTTLSConfig(p("ca.crt"), p("client.crt"), p("client.key"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := dial(b.servicesURL, "iocd", "service-secret-password", "iocd-b", withCert)
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	cl.Disconnect(0)
}
