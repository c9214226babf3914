// Package client is a Parley client: one logical session to the server over
// a raw TCP connection, kept alive with heartbeats and, when enabled,
// re-established after a drop.
//
// Requests (Login, Send, Sync, ...) may be made from any goroutine; each
// gets a fresh request id and waits for its own reply. Messages for the user
// arrive on Messages, each once and in sequence order per conversation:
// pushes are deduplicated, a gap is filled with Sync before anything after
// it is delivered, and after a reconnect every known conversation is caught
// up. Messages this client sends are not delivered back (Send returns their
// SendAck); those sent from the user's other devices are.
//
// Messages is closed when the client reaches StateClosed: after the
// messages accepted before that are handed over, or at once by Close, which
// drops what the application has not read. Close must always be called; it
// waits for every goroutine of the client.
//
// Lock order: Client.mu before conn.mu; conn.wmu before conn.mu; conn.mu
// before sendQueue.mu. Client.tmu
// and Client.evMu are leaves: nothing else is locked while they are held.
package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// Options configure a client. Every zero value means the default written
// beside the field; Dial fills them in and then validates the result.
type Options struct {
	Device         string        // sent in Login and Register
	DialTimeout    time.Duration // 0: 5s
	RequestTimeout time.Duration // 0: 10s; applied when ctx has no deadline, and to writes
	// Reconnect reconnects after a drop, logging in with the resume token.
	// Not after Close or Logout, a LOGOUT, BANNED or SESSION_REVOKED kick,
	// or a re-login refused with TOKEN_INVALID or BANNED; nor before the
	// first login, since there is no token yet.
	Reconnect              bool
	MinBackoff, MaxBackoff time.Duration // reconnect delays; 0: 100ms, 5s; with jitter
	// SyncOnLogin: after every (re)login, fetch Conversations and sync each
	// conversation from the later of the local last seq and the server's
	// read cursor (ack_seq), delivering what was missed to Messages. Without
	// it only conversations already tracked are caught up after a reconnect.
	SyncOnLogin bool
	PushBuffer  int          // capacity of the Messages channel; 0: 1024
	Logger      *slog.Logger // nil: discard
	// DeliveryReceipts: tell the sender of each direct message once it
	// reached Messages (Received, a few per conversation and second), so
	// its client shows it delivered.
	DeliveryReceipts bool
	// Dial opens the TCP connection; nil: a net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Plaintext turns encryption off: for a server behind a TLS-terminating
	// proxy (Dial then opens the TLS connection), or one that predates
	// encryption. By default every connection is encrypted with Noise.
	Plaintext bool
	// Pins keeps the server keys pinned on first use, by address; nil: in
	// memory, for the life of the Client. A server that does not hold the
	// pinned key is refused with ErrKeyChanged.
	Pins PinStore
	// OnPin is told when a key is pinned for an address for the first
	// time (rotated false) or replaced in a rotation the server announced
	// (rotated true); nil: a warning is logged.
	OnPin func(addr string, key []byte, rotated bool)
	// MaxFrame is the largest frame length (header + body) accepted from
	// the server; 0: 16 MiB. A Sync page may well be larger than the
	// server's own 64 KiB limit on client frames.
	MaxFrame int
}

// Limits the client applies to itself.
const (
	maxRedirects   = 3   // hops a login follows
	syncPageSize   = 500 // messages asked per Sync page (the server's maximum)
	convListLimit  = 500 // conversations asked for after a login
	maxGapRounds   = 3   // final Sync pages that may leave a gap before it is skipped
	gapRetryDelay  = 20 * time.Millisecond
	defaultMaxRead = 16 << 20
)

func (o *Options) fill() {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.PushBuffer == 0 {
		o.PushBuffer = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = defaultMaxRead
	}
	if o.Pins == nil {
		o.Pins = NewMemoryPins()
	}
}

func (o *Options) validate() error {
	switch {
	case o.DialTimeout < 0 || o.RequestTimeout < 0:
		return fmt.Errorf("%w: negative timeout", ErrOptions)
	case o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("%w: backoff %v-%v", ErrOptions, o.MinBackoff, o.MaxBackoff)
	case o.PushBuffer < 0:
		return fmt.Errorf("%w: PushBuffer %d", ErrOptions, o.PushBuffer)
	case o.MaxFrame < protocol.HeaderSize:
		return fmt.Errorf("%w: MaxFrame %d", ErrOptions, o.MaxFrame)
	}
	return nil
}

// Client is a session with a Parley server. Its methods are safe for
// concurrent use.
type Client struct {
	opts Options
	seed string // the address given to Dial
	log  *slog.Logger

	// ctx ends when the client reaches StateClosed; background work
	// (reconnects, syncs) runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	reqID   atomic.Uint32
	msgSeq  atomic.Uint64
	idStart string // prefix of generated client_msg_ids, unique per client

	mu           sync.Mutex
	state        State
	cn           *conn // the connection requests go to; nil while reconnecting
	addr         string
	userID       int64
	token        string
	filesURL     string        // of the last LoginOK
	ready        chan struct{} // closed while requests may go out; open while reconnecting
	reconnecting bool          // a reconnect goroutine runs
	loggingOut   bool
	closeErr     error

	tmu      sync.Mutex
	tr       *tracker
	finished bool          // under tmu: no more messages; Messages closes once out is empty
	wake     chan struct{} // cap 1: out has messages or finished was set
	msgs     chan protocol.Message

	evMu     sync.Mutex
	events   chan Event
	notices  chan Notice
	evClosed bool

	sq   *sendQueue // Sends, in call order; see sendq.go
	recv *received  // delivery receipts to send; see receipts.go

	static noise.DHKey // the client's Noise key, one for all its connections

	closeOnce sync.Once
	closeCh   chan struct{} // closed by Close: the delivery goroutine drops what is left
	wg        sync.WaitGroup
}

// Dial connects to addr. It does not log in: call Login, LoginToken or
// Register next.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := newClient(addr, opts)
	close(c.ready)
	cn, err := c.dial(ctx, addr)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.cn = cn
	c.state = StateConnected
	c.wg.Add(4)
	go c.deliver()
	go c.read(cn)
	go c.sendLoop()
	go c.receiptLoop()
	return c, nil
}

// newClient is a client with nothing running yet.
func newClient(addr string, opts Options) *Client {
	var prefix [8]byte
	_, _ = rand.Read(prefix[:])
	c := &Client{
		opts:    opts,
		seed:    addr,
		addr:    addr,
		log:     opts.Logger,
		idStart: hex.EncodeToString(prefix[:]) + "-",
		ready:   make(chan struct{}),
		tr:      newTracker(),
		sq:      newSendQueue(),
		recv:    newReceived(),
		wake:    make(chan struct{}, 1),
		msgs:    make(chan protocol.Message, opts.PushBuffer),
		events:  make(chan Event, eventBuffer),
		notices: make(chan Notice, noticeBuffer),
		closeCh: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if !opts.Plaintext {
		c.static, _ = secure.NewKey(nil) // crypto/rand does not fail
	}
	return c
}

// Resume returns a client for the session of an earlier login (its resume
// token) at addr, without waiting for the server: it connects and logs in
// with token in the background, as a reconnect does (Options.Reconnect is
// implied), retrying with backoff until it is logged in, the server
// refuses the token (the client closes with that error, TOKEN_INVALID), or
// Close. Until then requests, Sends among them, wait as they do during a
// reconnect. The client starts in StateReconnecting; EventLoggedIn tells
// when it is in.
func Resume(addr, token string, opts Options) (*Client, error) {
	opts.Reconnect = true
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("%w: Resume without a token", ErrOptions)
	}
	c := newClient(addr, opts)
	c.token = token
	c.state = StateReconnecting
	c.ready = make(chan struct{})
	c.reconnecting = true
	c.wg.Add(4)
	go c.deliver()
	go c.sendLoop()
	go c.receiptLoop()
	go c.reconnect(nil)
	return c, nil
}

// Close ends the client: the connection is closed, requests in flight
// return ErrClosed, no reconnect follows, and Messages and Events are closed
// once every goroutine of the client has ended. Messages not yet read are
// dropped. Close may be called more than once.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	c.closeOnce.Do(func() { close(c.closeCh) })
	c.wg.Wait()
	c.evMu.Lock()
	if !c.evClosed {
		c.evClosed = true
		close(c.events)
		close(c.notices)
	}
	c.evMu.Unlock()
	return nil
}

// Messages delivers every message for the user once (deduplicated by
// msg_id and seq), in seq order per conversation. See the package doc for
// when it is closed.
func (c *Client) Messages() <-chan protocol.Message { return c.msgs }

// Events reports state changes. It never blocks the client: when the
// application lags, the oldest events are dropped. It is closed by Close.
func (c *Client) Events() <-chan Event { return c.events }

// UserID is the logged-in user, 0 before the first login.
func (c *Client) UserID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// Token is the resume token of the last login, for LoginToken on a later
// client.
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// State is the client's state now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Do sends a request of type t with a fresh request id and waits for its
// reply, whose type it returns. An Error reply is returned as a
// *protocol.Error. Otherwise the body is decoded into reply when reply is
// not nil: a pointer to the protocol body type matching the frame type
// (ErrUnexpectedReply if not), or to any other type msgpack can fill.
//
// While the client reconnects, Do waits for the next login within ctx's
// deadline (RequestTimeout when ctx has none).
func (c *Client) Do(ctx context.Context, t protocol.Type, body any, reply any) (protocol.Type, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cn, err := c.acquire(ctx)
	if err != nil {
		return 0, err
	}
	r, err := cn.request(ctx, t, body)
	if err != nil {
		return 0, err
	}
	return r.typ, decodeReply(r, reply)
}

// Register creates an account and logs in as it, following a Redirect.
func (c *Client) Register(ctx context.Context, username, password string) (protocol.LoginOK, error) {
	return c.userLogin(ctx, protocol.TypeRegister, &protocol.Register{Username: username, Password: password, Device: c.opts.Device})
}

// Login logs in with a password, following a Redirect.
func (c *Client) Login(ctx context.Context, username, password string) (protocol.LoginOK, error) {
	return c.userLogin(ctx, protocol.TypeLogin, &protocol.Login{Username: username, Password: password, Device: c.opts.Device})
}

// LoginToken logs in with the resume token of an earlier login.
func (c *Client) LoginToken(ctx context.Context, token string) (protocol.LoginOK, error) {
	return c.userLogin(ctx, protocol.TypeLogin, &protocol.Login{Token: token, Device: c.opts.Device})
}

// NewClientMsgID returns a client_msg_id unique to this client, for
// SendRaw.
func (c *Client) NewClientMsgID() string {
	return c.idStart + strconv.FormatUint(c.msgSeq.Add(1), 10)
}

// Send sends a message to user to with a new client_msg_id, in call order
// with the client's other sends (see SendRaw). Its error is a *SendError
// holding that id: after ErrTimeout or ErrClosed the message may be stored,
// and SendRaw(ctx, e.Send) retries it safely.
func (c *Client) Send(ctx context.Context, to int64, contentType uint16, body []byte) (protocol.SendAck, error) {
	return c.SendRaw(ctx, protocol.Send{ClientMsgID: c.NewClientMsgID(), To: to, ContentType: contentType, Body: body})
}

// SendGroup is Send to a group.
func (c *Client) SendGroup(ctx context.Context, group int64, contentType uint16, body []byte) (protocol.SendAck, error) {
	return c.SendRaw(ctx, protocol.Send{ClientMsgID: c.NewClientMsgID(), GroupID: group, ContentType: contentType, Body: body})
}

// Ack moves the user's read cursor of conv to seq.
func (c *Client) Ack(ctx context.Context, conv string, seq uint64) error {
	_, err := c.Do(ctx, protocol.TypeAck, &protocol.Ack{Conv: conv, Seq: seq}, &protocol.OK{})
	return err
}

// Sync fetches messages of conv after seq lastAckID, oldest first. It only
// returns them: Messages is fed by the client's own syncs.
func (c *Client) Sync(ctx context.Context, conv string, lastAckID uint64, limit uint32) (protocol.SyncResult, error) {
	var res protocol.SyncResult
	_, err := c.Do(ctx, protocol.TypeSync, &protocol.Sync{Conv: conv, LastAckID: lastAckID, Limit: limit}, &res)
	return res, err
}

// History fetches messages of conv before beforeSeq (0: the newest),
// newest first.
func (c *Client) History(ctx context.Context, conv string, beforeSeq uint64, limit uint32) (protocol.HistoryResult, error) {
	var res protocol.HistoryResult
	_, err := c.Do(ctx, protocol.TypeHistory, &protocol.History{Conv: conv, BeforeSeq: beforeSeq, Limit: limit}, &res)
	return res, err
}

// DeleteHistory hides messages of conv from this user: those in seqs and,
// when upTo is not 0, every one up to it.
func (c *Client) DeleteHistory(ctx context.Context, conv string, seqs []uint64, upTo uint64) error {
	_, err := c.Do(ctx, protocol.TypeDeleteHistory, &protocol.DeleteHistory{Conv: conv, Seqs: seqs, UpTo: upTo}, &protocol.OK{})
	return err
}

// Conversations lists the user's conversations, most recent first.
func (c *Client) Conversations(ctx context.Context, limit uint32) ([]protocol.Conversation, error) {
	var res protocol.ConversationList
	_, err := c.Do(ctx, protocol.TypeConversations, &protocol.Conversations{Limit: limit}, &res)
	return res.Conversations, err
}

// Ping measures the round trip to the server.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Do(ctx, protocol.TypePing, &protocol.Ping{}, &protocol.Pong{}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// Logout revokes the session's token and closes the client (cause
// ErrLoggedOut); Close must still be called. If the server refuses, the
// client stays as it was and the error is returned.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	c.loggingOut = true
	c.mu.Unlock()
	_, err := c.Do(ctx, protocol.TypeLogout, &protocol.Logout{}, &protocol.OK{})
	if err != nil {
		c.mu.Lock()
		c.loggingOut = false
		c.mu.Unlock()
		return err
	}
	c.shutdown(ErrLoggedOut)
	return nil
}

func (c *Client) nextRequestID() uint32 {
	for {
		if id := c.reqID.Add(1); id != 0 {
			return id
		}
	}
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.RequestTimeout)
}

// acquire returns the connection for a request, waiting while the client
// reconnects.
func (c *Client) acquire(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		state, cn, ready, cause := c.state, c.cn, c.ready, c.closeErr
		c.mu.Unlock()
		switch {
		case state == StateClosed:
			return nil, closedErr(cause)
		case cn != nil:
			return cn, nil
		}
		select {
		case <-ready:
		case <-c.ctx.Done():
		case <-ctx.Done():
			return nil, ctxErr(ctx)
		}
	}
}

// decodeReply turns an Error reply into *protocol.Error and decodes any
// other into v.
func decodeReply(r reply, v any) error {
	if r.typ == protocol.TypeError {
		e := &protocol.Error{}
		if err := protocol.DecodeBody(r.body, e); err != nil {
			return badBody(r.typ, err)
		}
		return e
	}
	if v == nil {
		return nil
	}
	if want, ok := bodyType(v); ok && want != r.typ {
		return fmt.Errorf("%w: %s, want %s", ErrUnexpectedReply, r.typ, want)
	}
	if err := protocol.DecodeBody(r.body, v); err != nil {
		return badBody(r.typ, err)
	}
	return nil
}

// bodyType is the frame type whose body v points to.
func bodyType(v any) (protocol.Type, bool) {
	switch v.(type) {
	case *protocol.OK:
		return protocol.TypeOK, true
	case *protocol.Pong:
		return protocol.TypePong, true
	case *protocol.Redirect:
		return protocol.TypeRedirect, true
	case *protocol.LoginOK:
		return protocol.TypeLoginOK, true
	case *protocol.SendAck:
		return protocol.TypeSendAck, true
	case *protocol.SyncResult:
		return protocol.TypeSyncResult, true
	case *protocol.HistoryResult:
		return protocol.TypeHistoryResult, true
	case *protocol.ConversationList:
		return protocol.TypeConversationList, true
	case *protocol.Error:
		return protocol.TypeError, true
	case *protocol.UserList:
		return protocol.TypeUserList, true
	case *protocol.UserInfo:
		return protocol.TypeUserInfo, true
	case *protocol.FriendRequestList:
		return protocol.TypeFriendReqList, true
	case *protocol.FriendList:
		return protocol.TypeFriendList, true
	case *protocol.GroupInfo:
		return protocol.TypeGroupInfo, true
	case *protocol.GroupList:
		return protocol.TypeGroupList, true
	case *protocol.MemberList:
		return protocol.TypeMemberList, true
	}
	return 0, false
}
