package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

const (
	readBufSize     = 32 << 10 // frames larger than this are read into their own slice
	maxKeptWriteBuf = 64 << 10 // a larger write buffer is not kept for the next frame
)

// conn is one TCP connection to a node: a reader goroutine that decodes
// frames, writes serialised by a mutex, and the requests waiting for their
// reply by request id. A conn is used once; a reconnect makes a new one.
type conn struct {
	c     *Client
	nc    net.Conn
	addr  string
	log   *slog.Logger
	epoch time.Time
	// lastRecv is when bytes last arrived, in nanoseconds since epoch
	// (monotonic).
	lastRecv atomic.Int64
	// redirected is set when a login on this conn was answered Redirect.
	redirected atomic.Bool
	// loginID is the request id of the last Login or Register sent, so that
	// a Redirect with request id 0 can be matched to it.
	loginID atomic.Uint32
	// window is the LoginOK's send_window: how many Sends may be
	// unanswered on this conn. 0 until then, or from an older server.
	window atomic.Int64

	wmu  sync.Mutex // held for the whole of one frame's write
	wbuf []byte     // under wmu

	mu sync.Mutex
	// waiters are called, under mu, with the reply to their request id.
	waiters map[uint32]func(reply)
	err     error         // why the conn died; set once, but see failWrite
	done    chan struct{} // closed when err is set
	// wrote is set when err is a write's: the reader's last frame may
	// still replace it (failWrite).
	wrote bool
}

// sendWindow is how many Sends the sender may keep unanswered on cn.
func (cn *conn) sendWindow() int {
	if w := cn.window.Load(); w > 0 {
		return int(min(w, 1<<20))
	}
	return defaultSendWindow
}

// reply is a frame answering a request. body is a copy the receiver owns.
type reply struct {
	typ  protocol.Type
	body []byte
}

func newConn(c *Client, nc net.Conn, addr string) *conn {
	return &conn{
		c:       c,
		nc:      nc,
		addr:    addr,
		log:     c.log.With("addr", addr),
		epoch:   time.Now(),
		waiters: make(map[uint32]func(reply)),
		done:    make(chan struct{}),
	}
}

// idle is how long nothing has arrived.
func (cn *conn) idle() time.Duration {
	return time.Since(cn.epoch) - time.Duration(cn.lastRecv.Load())
}

// fail marks the conn dead with err (the first cause wins), wakes every
// waiting request and closes the socket, which ends the reader.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		wrote := cn.wrote
		if wrote {
			// The socket was kept for the reader (failWrite); its last
			// frame's cause wins, and now the socket closes.
			if lastFrame(err) {
				cn.err = err
			}
			cn.wrote = false
		}
		cn.mu.Unlock()
		if wrote {
			_ = cn.nc.Close()
		}
		return
	}
	if err == nil {
		err = io.EOF
	}
	cn.err = err
	cn.waiters = nil
	close(cn.done)
	cn.mu.Unlock()
	_ = cn.nc.Close()
}

// failWrite is fail for a write that failed on the socket. The conn dies
// at once (its requests wake; its sends go back to the queue), but the
// socket stays open for the reader a while: a server that ends a
// connection sends a last frame (a Kick, or a Redirect that moves the
// session) and closes, and a write racing that close fails while the frame
// is still there to read. The reader takes it, and its cause replaces the
// write's (fail), so that the reconnect follows it. lastFrameWait bounds
// the wait for a reader that takes nothing.
func (cn *conn) failWrite(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err, cn.wrote = err, true
	cn.waiters = nil
	close(cn.done)
	cn.mu.Unlock()
	time.AfterFunc(lastFrameWait, func() { _ = cn.nc.Close() })
}

// lastFrameWait bounds how long a conn whose write failed keeps its socket
// for the reader.
const lastFrameWait = 250 * time.Millisecond

// lastFrame reports whether err is the cause a server's last frame gives:
// a Kick or a Redirect.
func lastFrame(err error) bool {
	var k *KickError
	return errors.Is(err, ErrRedirected) || errors.As(err, &k)
}

// cause returns why the conn died, or nil while it lives.
func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// lostErr is the error of a request whose conn died under it.
func (cn *conn) lostErr() error {
	cause := cn.cause()
	if errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrDisconnected, cause)
}

// request writes a frame with a fresh request id and waits for its reply,
// the connection's end or ctx.
func (cn *conn) request(ctx context.Context, t protocol.Type, body any) (reply, error) {
	id := cn.c.nextRequestID()
	ch := make(chan reply, 1)
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return reply{}, cn.lostErr()
	}
	cn.waiters[id] = func(r reply) { ch <- r }
	cn.mu.Unlock()
	if t == protocol.TypeLogin || t == protocol.TypeRegister {
		cn.loginID.Store(id)
	}

	if err := cn.write(t, id, body); err != nil {
		cn.forget(id)
		return reply{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-cn.done:
		// The reader hands a reply over under mu before fail can run, so
		// a reply that made it is in ch now.
		select {
		case r := <-ch:
			return r, nil
		default:
			return reply{}, cn.lostErr()
		}
	case <-ctx.Done():
		cn.forget(id)
		select {
		case r := <-ch:
			return r, nil
		default:
			return reply{}, ctxErr(ctx)
		}
	}
}

// start writes a frame with a fresh request id and returns without waiting:
// f is called, on the reader under mu, with the reply. If the conn dies
// first f is never called. An error means the frame was not written whole
// (the conn is dead then, unless it is an encoding error).
func (cn *conn) start(t protocol.Type, body any, f func(reply)) error {
	id := cn.c.nextRequestID()
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return cn.lostErr()
	}
	cn.waiters[id] = f
	cn.mu.Unlock()
	if err := cn.write(t, id, body); err != nil {
		cn.forget(id)
		return err
	}
	return nil
}

// waiting reports whether a request with id waits for its reply.
func (cn *conn) waiting(id uint32) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	_, ok := cn.waiters[id]
	return ok
}

func (cn *conn) forget(id uint32) {
	cn.mu.Lock()
	delete(cn.waiters, id)
	cn.mu.Unlock()
}

// write sends one frame. An encoding error is returned as is; a socket
// error kills the conn, since a partial frame cannot be taken back.
func (cn *conn) write(t protocol.Type, id uint32, body any) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	buf, err := protocol.AppendFrame(cn.wbuf[:0], t, id, body)
	if err != nil {
		return err
	}
	if cap(buf) <= maxKeptWriteBuf {
		cn.wbuf = buf[:0]
	} else {
		cn.wbuf = nil
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.c.opts.RequestTimeout))
	if _, err := cn.nc.Write(buf); err != nil {
		cn.failWrite(fmt.Errorf("client: write: %w", err))
		return cn.lostErr()
	}
	return nil
}

// stampReader records when bytes arrive, for the heartbeat's dead-connection
// check.
type stampReader struct{ cn *conn }

func (r stampReader) Read(p []byte) (int, error) {
	n, err := r.cn.nc.Read(p)
	if n > 0 {
		r.cn.lastRecv.Store(int64(time.Since(r.cn.epoch)))
	}
	return n, err
}

// readLoop decodes frames until the connection fails, and returns why.
// Frames are decoded straight from bufio's buffer; handle copies what it
// keeps. A frame larger than the buffer is read into a slice of its own.
func (cn *conn) readLoop() error {
	br := bufio.NewReaderSize(stampReader{cn}, readBufSize)
	maxFrame := cn.c.opts.MaxFrame
	for {
		if _, err := br.Peek(protocol.LengthSize); err != nil {
			return err
		}
		buf, _ := br.Peek(br.Buffered())
		off := 0
		for off < len(buf) {
			h, body, n, err := protocol.Decode(buf[off:], maxFrame)
			if errors.Is(err, protocol.ErrIncomplete) {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: %w", ErrBadFrame, err)
			}
			if err := cn.handle(h, body); err != nil {
				return err
			}
			off += n
		}
		if off > 0 {
			_, _ = br.Discard(off)
			continue
		}
		// A partial frame heads the buffer: wait for all of it.
		size := protocol.PeekSize(buf)
		if size <= br.Size() {
			if _, err := br.Peek(size); err != nil {
				return err
			}
			continue
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			return err
		}
		h, body, _, err := protocol.Decode(frame, maxFrame)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadFrame, err)
		}
		if err := cn.handle(h, body); err != nil {
			return err
		}
	}
}

// handle acts on one frame. body is only valid during the call. A non-nil
// error ends the connection.
func (cn *conn) handle(h protocol.Header, body []byte) error {
	switch h.Type {
	case protocol.TypePing:
		// The server's heartbeat: answer with its request id. A write error
		// kills the conn, and the next read ends the loop.
		_ = cn.write(protocol.TypePong, h.RequestID, &protocol.Pong{})
		return nil
	case protocol.TypeKick:
		var k protocol.Kick
		if err := protocol.DecodeBody(body, &k); err != nil {
			return badBody(h.Type, err)
		}
		return &KickError{Reason: k.Reason, Message: k.Message, Until: k.Until}
	case protocol.TypePush:
		var m protocol.Message
		if err := protocol.DecodeBody(body, &m); err != nil {
			return badBody(h.Type, err)
		}
		cn.c.onPush(cn, m)
		return nil
	case protocol.TypeFriendEvent, protocol.TypeGroupEvent, protocol.TypePresence,
		protocol.TypeTypingEvent, protocol.TypeReadEvent, protocol.TypeDeliveredEvent,
		protocol.TypeGroupReadEvent, protocol.TypeConvState, protocol.TypeExpired:
		n, err := decodeNotice(h.Type, body)
		if err != nil {
			return badBody(h.Type, err)
		}
		cn.c.notify(n)
		return nil
	case protocol.TypeRedirect:
		if h.RequestID == 0 {
			// The protocol doc sends Redirect with request id 0: with a
			// login waiting it answers that login, else it moves the session.
			if id := cn.loginID.Load(); id != 0 && cn.waiting(id) {
				h.RequestID = id
			} else {
				var rd protocol.Redirect
				if err := protocol.DecodeBody(body, &rd); err != nil || rd.Addr == "" {
					return badBody(h.Type, err)
				}
				return cn.c.onMove(cn, rd)
			}
		}
	}
	if h.RequestID == 0 {
		if h.Type == protocol.TypeError {
			var e protocol.Error
			if err := protocol.DecodeBody(body, &e); err != nil {
				return badBody(h.Type, err)
			}
			cn.log.Warn("server error", "code", e.Code.String(), "message", e.Message)
			return nil
		}
		cn.log.Debug("frame ignored", "type", h.Type.String())
		return nil
	}
	// The reader applies logins and send acks itself, before any frame that
	// follows them, whether or not their caller still waits.
	switch h.Type {
	case protocol.TypeRedirect:
		cn.redirected.Store(true)
	case protocol.TypeLoginOK:
		var ok protocol.LoginOK
		if err := protocol.DecodeBody(body, &ok); err != nil {
			return badBody(h.Type, err)
		}
		cn.c.onLoginOK(cn, ok)
	case protocol.TypeSendAck:
		var ack protocol.SendAck
		if err := protocol.DecodeBody(body, &ack); err != nil {
			return badBody(h.Type, err)
		}
		cn.c.onSendAck(cn, ack)
	}
	cn.mu.Lock()
	f, ok := cn.waiters[h.RequestID]
	if ok {
		delete(cn.waiters, h.RequestID)
		f(reply{typ: h.Type, body: append([]byte(nil), body...)})
	}
	cn.mu.Unlock()
	if !ok && h.Type != protocol.TypePong {
		cn.log.Debug("reply to no waiting request", "type", h.Type.String(), "request_id", h.RequestID)
	}
	return nil
}

func badBody(t protocol.Type, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrBadFrame, t, err)
}

// ctxErr is the error of a request whose ctx ended: ErrTimeout for a
// deadline (it also matches context.DeadlineExceeded), the ctx's error
// otherwise.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}
