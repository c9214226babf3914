package secure

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
)

// ClientConfig configures the client's side of a handshake.
type ClientConfig struct {
	// Static is the client's key pair; zero: a new one per connection.
	Static noise.DHKey
	// ServerKey is the server's pinned static public key: IK with it, XX
	// without.
	ServerKey []byte
	// Rand is the source of the ephemeral key; nil: crypto/rand.
	Rand io.Reader
	// RekeyFrames and RekeyBytes: the client moves its sending direction to
	// the next key after that many frames or bytes; 0: 1<<20 and 1 GiB.
	RekeyFrames, RekeyBytes int
	// MaxFrame bounds the plaintext frames accepted; 0: 16 MiB.
	MaxFrame int
}

// Errors of the client's handshake.
var (
	// ErrHandshake: the server answered the handshake with something other
	// than NoiseReply (a Kick, an Error), or its message did not verify.
	ErrHandshake = errors.New("secure: handshake failed")
)

// Conn is a net.Conn that carries Parley frames sealed with Noise. Writes
// must be frames (a Write may end inside one; the rest comes with the
// next); reads return plaintext frames. Rekey frames are handled inside.
type Conn struct {
	net.Conn
	serverKey []byte
	newKey    []byte // a key the server said to pin from now on (rotation)

	wmu      sync.Mutex
	tx       *noise.CipherState
	wpend    []byte // the start of a frame not yet written whole
	wbuf     []byte
	txFrames int
	txBytes  int
	rekeyF   int
	rekeyB   int

	rmu      sync.Mutex
	rx       *noise.CipherState
	br       *bufio.Reader
	rekeys   int    // Rekey frames received
	rerr     error  // a read error after bytes were returned; the next Read's
	plain    []byte // opened, not yet read
	pbuf     []byte
	maxFrame int
}

// Client runs the client's side of a handshake on nc and returns the
// sealed connection. It sets no deadline: the caller does.
func Client(nc net.Conn, cfg ClientConfig) (*Conn, error) {
	if cfg.Static.Private == nil {
		k, err := NewKey(cfg.Rand)
		if err != nil {
			return nil, err
		}
		cfg.Static = k
	}
	if cfg.RekeyFrames <= 0 {
		cfg.RekeyFrames = 1 << 20
	}
	if cfg.RekeyBytes <= 0 {
		cfg.RekeyBytes = 1 << 30
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = 16 << 20
	}
	hs, pattern, err := Initiator(cfg.Static, cfg.ServerKey, cfg.Rand)
	if err != nil {
		return nil, err
	}
	msg1, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(protocol.MustFrame(protocol.TypeNoiseHello, 0, &protocol.NoiseHello{Pattern: pattern, Msg: msg1})); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4<<10)
	var reply protocol.NoiseReply
	if err := readHandshakeFrame(br, &reply); err != nil {
		return nil, err
	}
	payload, cs1, cs2, err := hs.ReadMessage(nil, reply.Msg)
	if err != nil {
		return nil, fmt.Errorf("%w: the server's message does not verify: %v", ErrHandshake, err)
	}
	c := &Conn{Conn: nc, br: br, rekeyF: cfg.RekeyFrames, rekeyB: cfg.RekeyBytes, maxFrame: cfg.MaxFrame}
	c.serverKey = append([]byte(nil), hs.PeerStatic()...)
	if pattern == PatternXX {
		msg3, a, b, err := hs.WriteMessage(nil, nil)
		if err != nil {
			return nil, err
		}
		if _, err := nc.Write(protocol.MustFrame(protocol.TypeNoiseFinish, 0, &protocol.NoiseFinish{Msg: msg3})); err != nil {
			return nil, err
		}
		cs1, cs2 = a, b
	} else if len(payload) == KeySize {
		c.newKey = payload
	}
	// The initiator sends with the first CipherState of Split.
	c.tx, c.rx = cs1, cs2
	return c, nil
}

// readHandshakeFrame reads the server's answer to a handshake message.
func readHandshakeFrame(br *bufio.Reader, reply *protocol.NoiseReply) error {
	head, err := br.Peek(protocol.LengthSize)
	if err != nil {
		return err
	}
	size := protocol.PeekSize(head)
	if size > 64<<10 {
		return fmt.Errorf("%w: a %d-byte answer", ErrHandshake, size)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(br, frame); err != nil {
		return err
	}
	h, body, _, err := protocol.Decode(frame, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	switch h.Type {
	case protocol.TypeNoiseReply:
		return protocol.DecodeBody(body, reply)
	case protocol.TypeKick:
		var k protocol.Kick
		_ = protocol.DecodeBody(body, &k)
		return fmt.Errorf("%w: kicked %s: %s", ErrHandshake, k.Reason, k.Message)
	case protocol.TypeError:
		var e protocol.Error
		_ = protocol.DecodeBody(body, &e)
		return fmt.Errorf("%w: %s: %s", ErrHandshake, e.Code, e.Message)
	}
	return fmt.Errorf("%w: answered with %s", ErrHandshake, h.Type)
}

// ServerKey is the static key the server proved it holds.
func (c *Conn) ServerKey() []byte { return c.serverKey }

// NewServerKey is the key the server told an IK client to pin from now on
// (its key was rotated and the pinned one is retired), or nil.
func (c *Conn) NewServerKey() []byte { return c.newKey }

// Rekeys is the number of Rekey frames the server sent so far.
func (c *Conn) Rekeys() int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.rekeys
}

// Write seals the frames in p. A frame cut at the end of p waits for the
// rest.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	data := p
	if len(c.wpend) > 0 {
		c.wpend = append(c.wpend, p...)
		data = c.wpend
	}
	out := c.wbuf[:0]
	for len(data) >= protocol.LengthSize {
		n := protocol.PeekSize(data)
		if n < protocol.PrefixSize {
			return 0, fmt.Errorf("secure: write of a %d-byte frame", n)
		}
		if n > len(data) {
			break
		}
		var err error
		if out, err = Seal(out, c.tx, data[:n]); err != nil {
			return 0, err
		}
		c.txFrames++
		c.txBytes += n
		if c.txFrames >= c.rekeyF || c.txBytes >= c.rekeyB {
			out, _ = Seal(out, c.tx, rekeyFrame)
			c.tx.Rekey()
			c.txFrames, c.txBytes = 0, 0
		}
		data = data[n:]
	}
	c.wpend = append(c.wpend[:0], data...)
	if cap(out) <= 1<<20 {
		c.wbuf = out[:0]
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

var rekeyFrame = protocol.MustFrame(protocol.TypeRekey, 0, nil)

// Read returns opened frames.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.rerr; err != nil {
		return 0, err
	}
	for len(c.plain) == 0 {
		if err := c.readFrame(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	// Open more frames while they are buffered whole and fit: a reader
	// gets what one socket read brought, not a frame per call.
	for len(c.plain) == 0 && n < len(p) && c.bufferedWhole() {
		if err := c.readFrame(); err != nil {
			c.rerr = err // the next Read returns it
			return n, nil
		}
		k := copy(p[n:], c.plain)
		c.plain = c.plain[k:]
		n += k
	}
	return n, nil
}

// bufferedWhole reports whether a whole sealed frame is buffered.
func (c *Conn) bufferedWhole() bool {
	if c.br.Buffered() < protocol.LengthSize {
		return false
	}
	head, _ := c.br.Peek(protocol.LengthSize)
	return protocol.PeekSize(head) <= c.br.Buffered()
}

func (c *Conn) readFrame() error {
	head, err := c.br.Peek(protocol.LengthSize)
	if err != nil {
		return err
	}
	size := protocol.PeekSize(head)
	if size-protocol.LengthSize > MaxSealed(c.maxFrame) {
		return ErrTooLarge
	}
	var sealed []byte
	if size <= c.br.Size() {
		if sealed, err = c.br.Peek(size); err != nil {
			return err
		}
	} else {
		sealed = make([]byte, size)
		if _, err := io.ReadFull(c.br, sealed); err != nil {
			return err
		}
	}
	frame, _, err := Open(c.pbuf[:0], c.rx, sealed, c.maxFrame)
	if size <= c.br.Size() {
		_, _ = c.br.Discard(size)
	}
	if err != nil {
		return err
	}
	if cap(frame) <= 1<<20 {
		c.pbuf = frame[:0]
	}
	if h, _, _, err := protocol.Decode(frame, 0); err == nil && h.Type == protocol.TypeRekey {
		c.rx.Rekey()
		c.rekeys++
		return nil
	}
	c.plain = frame
	return nil
}

// SetDeadline and the others are those of the underlying conn.
var _ net.Conn = (*Conn)(nil)

// HandshakeTimeout is a sensible bound on a client's handshake.
const HandshakeTimeout = 10 * time.Second

// CipherStates hands over the connection's sending and receiving states,
// for a caller that frames on its own (an event loop). The Conn must not
// be written or read after it.
func (c *Conn) CipherStates() (tx, rx *noise.CipherState) { return c.tx, c.rx }
