package server_test

import (
	"context"
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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// testCA is a certificate authority made for one test, and a server
// certificate for "parley.test" it signed.
type testCA struct {
	pool       *x509.CertPool
	serverPEM  []byte // certificate and key, as HAProxy's crt wants them
	serverName string
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Parley test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "parley.test"}, DNSNames: []string{"parley.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testCA{pool: pool, serverPEM: pemBytes, serverName: "parley.test"}
}

// startHAProxy runs a private HAProxy that terminates TLS on a free port
// and passes the connections to backend with a PROXY v2 header (and the
// TLS TLVs). It returns the TLS address.
func startHAProxy(t *testing.T, ca testCA, backend string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			t.Fatal("haproxy is not installed: `make services` (scripts/services.sh up) installs it")
		}
		bin = "/usr/sbin/haproxy"
	}
	dir := t.TempDir()
	crt := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(crt, ca.serverPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	front := servertest.FreeAddr(t)
	cfg := fmt.Sprintf(`global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend tls
    bind %s ssl crt %s
    default_backend parley
backend parley
    server parleyd %s send-proxy-v2-ssl
`, front, crt, backend)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	logf, _ := os.Create(filepath.Join(dir, "haproxy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("haproxy log:\n%s", out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			_ = c.Close()
			return front
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s: %v", front, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsFrom dials the TLS front from a given loopback source address.
func tlsFrom(ca testCA, src string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := &tls.Dialer{
			NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}},
			Config:    &tls.Config{RootCAs: ca.pool, ServerName: ca.serverName, MinVersion: tls.VersionTLS13},
		}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// TestHAProxyTLSEndToEnd: HAProxy terminates TLS with a test CA in front of
// a server that requires encryption and trusts it for the PROXY protocol;
// Go clients reach the server over TLS through it, and the server sees
// each client's own address, not HAProxy's.
func TestHAProxyTLSEndToEnd(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.RequireEncryption = true // TLS at the proxy counts, by its SSL TLV
		c.MaxConnsPerAddr = 4
	})
	ca := newTestCA(t)
	front := startHAProxy(t, ca, srv.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dialAs := func(src string) *client.Client {
		c, err := client.Dial(ctx, front, client.Options{Plaintext: true, Dial: tlsFrom(ca, src), Logger: servertest.Logger(t)})
		if err != nil {
			t.Fatalf("dial %s over TLS from %s: %v", front, src, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	alice, bob := dialAs("127.0.0.2"), dialAs("127.0.0.3")
	aliceName, bobName := uniqueName("tlsalice"), uniqueName("tlsbob")
	if _, err := alice.Register(ctx, aliceName, "correct horse"); err != nil {
		t.Fatal(err)
	}
	bobOK, err := bob.Register(ctx, bobName, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, bobOK.UserID, 0, []byte("through haproxy")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-bob.Messages():
		if string(m.Body) != "through haproxy" {
			t.Fatalf("push %q", m.Body)
		}
	case <-ctx.Done():
		t.Fatal("no push through haproxy")
	}
	for name, addr := range map[string]string{aliceName: "127.0.0.2", bobName: "127.0.0.3"} {
		if !server.KnownAddr(srv, name, addr) {
			t.Errorf("%s logged in through haproxy, but the server did not see it come from %s", name, addr)
		}
		if server.KnownAddr(srv, name, "127.0.0.1") {
			t.Errorf("%s: the server saw haproxy's address", name)
		}
	}
	// A connection from the trusted address without a PROXY header is
	// refused: only what HAProxy sends is taken.
	direct := dial(t, srv.Addr())
	direct.send(protocol.TypePing, nil)
	direct.expectError(0, protocol.CodeBadFrame)
	direct.expectKick(protocol.KickProtocolError)
}
