package server_test

import (
	"net"
	"net/netip"
	"testing"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// proxyHeader is a PROXY v2 header for a TCP connection from src; tls adds
// the SSL TLV saying the client reached the proxy over TLS.
func proxyHeader(t *testing.T, src string, tls bool) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 40000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7070})
	if tls {
		tlv, err := tlvparse.PP2SSL{
			Client: tlvparse.PP2_BITFIELD_CLIENT_SSL,
			TLV:    []proxyproto.TLV{{Type: proxyproto.PP2_SUBTYPE_SSL_VERSION, Value: []byte("TLSv1.3")}},
		}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := h.SetTLVs([]proxyproto.TLV{tlv}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func trustLoopback(c *server.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

func TestProxyHeaderGivesTheClientAddress(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		trustLoopback(c)
		c.MaxConnsPerAddr = 1
	})
	r := dial(t, srv.Addr())
	r.sendBytes(proxyHeader(t, "10.9.8.7", false))
	name := uniqueName("proxied")
	r.register(name)
	if !server.KnownAddr(srv, name, "10.9.8.7") {
		t.Fatal("the login was not recorded from the address in the PROXY header")
	}
	if server.KnownAddr(srv, name, "127.0.0.1") {
		t.Fatal("the login was recorded from the proxy's address")
	}
	// The per-address cap counts the client's address, not the proxy's:
	// a second connection of 10.9.8.7 is refused, one of 10.9.8.8 is not.
	r2 := dial(t, srv.Addr())
	r2.sendBytes(proxyHeader(t, "10.9.8.7", false))
	r2.expectKick(protocol.KickTooManyConns)
	r3 := dial(t, srv.Addr())
	r3.sendBytes(proxyHeader(t, "10.9.8.8", false))
	r3.ping()
}

func TestProxyHeaderSplitAtEveryOffset(t *testing.T) {
	srv := startServer(t, trustLoopback)
	stream := append(proxyHeader(t, "10.1.1.1", true), protocol.MustFrame(protocol.TypePing, 7, nil)...)
	for i := 1; i < len(stream); i++ {
		r := dial(t, srv.Addr())
		r.sendBytes(stream[:i])
		r.sendBytes(stream[i:])
		r.expect(protocol.TypePong, 7, nil)
		_ = r.c.Close()
	}
}

func TestProxyHeaderRequired(t *testing.T) {
	srv := startServer(t, trustLoopback)
	r := dial(t, srv.Addr())
	r.send(protocol.TypePing, nil) // a frame, not a header, from a trusted proxy
	r.expectError(0, protocol.CodeBadFrame)
	r.expectKick(protocol.KickProtocolError)
	r.expectClosed()
}

func TestProxyHeaderFromUntrustedRefused(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	r := dial(t, srv.Addr())
	r.sendBytes(proxyHeader(t, "10.9.8.7", false))
	r.expectError(0, protocol.CodeFrameTooLarge) // read as a frame: its "length" is 0x0D0A0D0A
	r.expectKick(protocol.KickProtocolError)
}

func TestProxyTLSCountsAsEncrypted(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		trustLoopback(c)
		c.RequireEncryption = true
	})
	r := dial(t, srv.Addr())
	r.sendBytes(proxyHeader(t, "10.2.2.2", true))
	r.register(uniqueName("tlsuser"))

	r = dial(t, srv.Addr())
	r.sendBytes(proxyHeader(t, "10.2.2.3", false))
	id := r.send(protocol.TypeRegister, &protocol.Register{Username: uniqueName("plain"), Password: "correct horse"})
	r.expectError(id, protocol.CodeEncryptionRequired)
	r.expectKick(protocol.KickPlaintext)
}
