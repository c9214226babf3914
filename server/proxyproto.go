package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/panjf2000/gnet/v2"
	proxyproto "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/parleyim/parley/protocol"
)

// The PROXY protocol, version 2 (docs/operations.md, "Behind a load
// balancer"). A connection from an address in Config.TrustedProxies must
// start with a PROXY v2 header; the client's address it names replaces the
// proxy's for everything keyed by address (the per-address connection cap,
// login and handshake admission, failed-login windows, logs). Connections
// from anywhere else are never read for a header: their first bytes are a
// frame, and a PROXY header there is refused like any malformed frame.
//
// gnet hands the server no net.Listener to wrap, so the header is taken in
// the first stage of the pipeline, on the event loop, before any frame:
// go-proxyproto parses the header's bytes once they are all buffered.

// proxyHeaderMax bounds the header (16 bytes and its TLVs); HAProxy's with
// the SSL TLVs is well under it.
const proxyHeaderMax = 16 + 1024

// trustedProxy reports whether ip is one of the configured proxies.
func (s *Server) trustedProxy(ip net.IP) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// proxyStage takes the PROXY header of a connection from a trusted proxy.
// It reports how many bytes it used, 0 while the header is incomplete;
// ok is false when the connection was kicked.
func (s *Server) proxyStage(ss *session, c gnet.Conn, buf []byte) (n int, ok bool) {
	if len(buf) < 16 {
		if k := min(len(buf), len(proxyproto.SIGV2)); !bytes.Equal(buf[:k], proxyproto.SIGV2[:k]) {
			return 0, s.proxyRefused(ss, "a trusted proxy's connection must start with a PROXY v2 header")
		}
		return 0, true
	}
	if !bytes.Equal(buf[:12], proxyproto.SIGV2) {
		return 0, s.proxyRefused(ss, "a trusted proxy's connection must start with a PROXY v2 header")
	}
	n = 16 + int(binary.BigEndian.Uint16(buf[14:16]))
	if n > proxyHeaderMax {
		return 0, s.proxyRefused(ss, "PROXY header too long")
	}
	if len(buf) < n {
		return 0, true
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(buf[:n]), n))
	if err != nil {
		return 0, s.proxyRefused(ss, "malformed PROXY v2 header")
	}
	ss.proxied = false
	if h.Command.IsLocal() {
		// The proxy's own health check: the connection stays its.
		return n, true
	}
	src, _, isTCP := h.TCPAddrs()
	if !isTCP {
		return 0, s.proxyRefused(ss, "PROXY header without a TCP source address")
	}
	key := addrKey(src.IP)
	if !s.addrs.open(key) {
		ss.kick(protocol.KickTooManyConns, "too many connections from this address")
		return 0, false
	}
	ss.addr, ss.addrOpen = key, true
	if tlvs, err := h.TLVs(); err == nil {
		if ssl, found := tlvparse.FindSSL(tlvs); found && ssl.ClientSSL() {
			ss.tls = true // the client reached the proxy over TLS
		}
	}
	return n, true
}

func (s *Server) proxyRefused(ss *session, msg string) bool {
	ss.write(appendLoopError(nil, 0, protocol.CodeBadFrame, msg))
	ss.kick(protocol.KickProtocolError, msg)
	return false
}
