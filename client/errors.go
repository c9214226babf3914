package client

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/protocol"
)

// Errors of the client. A request the server refused returns its
// *protocol.Error instead (match it with errors.As and check Code); the
// errors here are the client's own and are matched with errors.Is.
var (
	// ErrClosed: the client is closed (Close, Logout, or a final kick or
	// login failure; the cause is wrapped beside it).
	ErrClosed = errors.New("client: closed")
	// ErrTimeout: no reply within the request's deadline. The request may
	// have been processed.
	ErrTimeout = errors.New("client: request timed out")
	// ErrDisconnected: the connection dropped while the request waited for
	// its reply. The request may or may not have been processed: retry a
	// Send with SendRaw and the same client_msg_id (SendError carries it).
	ErrDisconnected = errors.New("client: disconnected")
	// ErrKicked matches every *KickError.
	ErrKicked = errors.New("client: kicked by the server")
	// ErrDeadConn: nothing arrived for three heartbeat intervals.
	ErrDeadConn = errors.New("client: no traffic for three heartbeat intervals")
	// ErrBadFrame: the server sent a frame the client cannot parse; the
	// connection is closed.
	ErrBadFrame = errors.New("client: malformed frame from the server")
	// ErrUnexpectedReply: the reply's frame type is not the one the reply
	// value passed to Do can hold.
	ErrUnexpectedReply = errors.New("client: unexpected reply type")
	// ErrTooManyRedirects: a login was redirected more than three times.
	ErrTooManyRedirects = errors.New("client: too many redirects")
	// ErrRedirected: the server moved the logged-in session to another
	// node with an unsolicited Redirect; the client reconnects there at once.
	ErrRedirected = errors.New("client: redirected")
	// ErrLoggedOut is the close cause after Logout.
	ErrLoggedOut = errors.New("client: logged out")
	// ErrOptions: Options failed validation in Dial.
	ErrOptions = errors.New("client: invalid options")
)

// KickError is a Kick the server sent before closing the connection.
type KickError struct {
	Reason  protocol.KickReason
	Message string
	Until   int64 // end of a ban, Unix ms (BANNED)
}

func (e *KickError) Error() string {
	if e.Message == "" {
		return "client: kicked: " + e.Reason.String()
	}
	return fmt.Sprintf("client: kicked: %s: %s", e.Reason, e.Message)
}

// Is makes errors.Is(err, ErrKicked) true for every kick.
func (e *KickError) Is(target error) bool { return target == ErrKicked }

// Final reports whether the reason forbids reconnecting: LOGOUT, BANNED and
// SESSION_REVOKED. Other kicks are followed by a reconnect with backoff.
func (e *KickError) Final() bool {
	switch e.Reason {
	case protocol.KickLogout, protocol.KickBanned, protocol.KickSessionRevoked:
		return true
	}
	return false
}

// SendError is the error of Send and SendRaw. It carries the Send as
// written, with its client_msg_id, so that a caller who got ErrDisconnected
// or ErrTimeout can retry with SendRaw(ctx, e.Send): the server stores it
// once.
type SendError struct {
	Send protocol.Send
	Err  error
}

func (e *SendError) Error() string {
	return fmt.Sprintf("client: send %s: %v", e.Send.ClientMsgID, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// finalError reports whether err ends the client instead of a reconnect:
// a final kick, or a login the server refuses for good.
func finalError(err error) bool {
	var k *KickError
	if errors.As(err, &k) {
		return k.Final()
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeTokenInvalid, protocol.CodeBanned, protocol.CodeBadCredentials:
			return true
		}
	}
	// A server that no longer holds the pinned key is not retried: that is
	// what a man in the middle looks like (docs/protocol.md, 1.1).
	return errors.Is(err, ErrLoggedOut) || errors.Is(err, ErrKeyChanged)
}

// immediate reports whether a drop for err is followed by a reconnect
// without waiting: the server sent the client elsewhere.
func immediate(err error) bool {
	var k *KickError
	return errors.Is(err, ErrRedirected) || (errors.As(err, &k) && k.Reason == protocol.KickSlotMoved)
}

// transient reports whether a server error may succeed if retried.
func transient(pe *protocol.Error) bool {
	switch pe.Code {
	case protocol.CodeRateLimited, protocol.CodeBusy, protocol.CodeTooManyAttempts:
		return true
	}
	return pe.Code >= 5000 && pe.Code <= 5999
}

// closedErr is the error of a request on a closed client.
func closedErr(cause error) error {
	if cause == nil || errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}
