package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// codeWords says each wire error code in words for people. A code missing
// here is shown with the server's own message.
var codeWords = map[protocol.Code]string{
	protocol.CodeNotLoggedIn:      "not logged in",
	protocol.CodeRateLimited:      "slow down: too many requests at once",
	protocol.CodeBusy:             "the server is busy: try again",
	protocol.CodeBadCredentials:   "wrong username or password",
	protocol.CodeUsernameTaken:    "that username is taken",
	protocol.CodeInvalidUsername:  "a username is 3 to 32 letters, digits, '_', '.' or '-'",
	protocol.CodeWeakPassword:     "a password needs 8 to 128 characters",
	protocol.CodeTokenInvalid:     "the saved session has expired or was revoked: log in again",
	protocol.CodeNoSuchUser:       "there is no such user",
	protocol.CodeBadConv:          "that is not one of your conversations",
	protocol.CodeMessageTooLong:   "the message is too long",
	protocol.CodeSelfMessage:      "you cannot message yourself",
	protocol.CodeNotFriends:       "you can only message friends: /add NAME, and wait until they accept",
	protocol.CodeAlreadyFriends:   "you are friends already",
	protocol.CodeRequestExists:    "a friend request between you is already waiting for an answer",
	protocol.CodeNoSuchRequest:    "there is no friend request from them",
	protocol.CodeNotAFriend:       "they are not your friend",
	protocol.CodeSelfFriend:       "you cannot befriend yourself",
	protocol.CodeNoSuchGroup:      "there is no such group",
	protocol.CodeNotMember:        "not a member of that group",
	protocol.CodeNotOwner:         "only the group's owner may do that",
	protocol.CodeGroupFull:        "the group is full",
	protocol.CodeGroupClosed:      "that group is invite-only: ask a member to /invite you",
	protocol.CodeAlreadyMember:    "already a member of that group",
	protocol.CodeOwnerCannotLeave: "the owner cannot leave the group",
	protocol.CodeBadGroupName:     "a group name is 1 to 64 characters",
	protocol.CodeInternal:         "the server failed (an internal error): try again",
	protocol.CodeUnavailable:      "the server cannot reach its storage: nothing was stored, try again soon",
	protocol.CodeShutdown:         "the server is shutting down",
	protocol.CodeTimeout:          "the server took too long: try again",
}

// kickWords says why the server closed the connection.
var kickWords = map[protocol.KickReason]string{
	protocol.KickShutdown:       "the server is shutting down",
	protocol.KickIdle:           "the connection was idle too long",
	protocol.KickSlowConsumer:   "this client read too slowly",
	protocol.KickProtocolError:  "the server could not understand this client",
	protocol.KickLogout:         "logged out",
	protocol.KickBanned:         "this account is banned",
	protocol.KickTooManyConns:   "the server is full: too many connections",
	protocol.KickSessionRevoked: "this session was revoked: log in again",
	protocol.KickSlotMoved:      "the account moved to another server",
}

// Plain says an error in words for people: the server's refusals by
// their code, kicks by their reason, and the client's own errors.
func Plain(err error) string {
	var pe *protocol.Error
	var ke *client.KickError
	var ne net.Error
	var fe *client.FileError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pe):
		return refusal(pe)
	case errors.As(err, &ke):
		s, ok := kickWords[ke.Reason]
		if !ok {
			s = "disconnected by the server (" + ke.Reason.String() + ")"
		}
		if ke.Until > 0 {
			s += " until " + when(ke.Until)
		}
		if ke.Message != "" && ke.Reason != protocol.KickLogout {
			s += ": " + ke.Message
		}
		return s
	case errors.Is(err, client.ErrLoggedOut):
		return "logged out"
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "the server did not answer in time"
	case errors.Is(err, client.ErrDisconnected):
		return "the connection dropped before the server answered"
	case errors.Is(err, client.ErrDeadConn):
		return "the server stopped answering"
	case errors.Is(err, client.ErrTooManyRedirects):
		return "the servers keep redirecting this login"
	case errors.Is(err, client.ErrClosed):
		return "the connection is closed"
	case errors.As(err, &fe):
		return "the file server refused: " + fe.Message
	case errors.As(err, &ne):
		return "cannot reach the server: " + err.Error()
	}
	return err.Error()
}

func refusal(pe *protocol.Error) string {
	switch pe.Code {
	case protocol.CodeBanned:
		return "this account is banned until " + when(pe.Until)
	case protocol.CodeTooManyAttempts:
		return "too many failed logins: try again after " + when(pe.Until)
	}
	if s, ok := codeWords[pe.Code]; ok {
		return s
	}
	if pe.Message != "" {
		return "the server refused: " + pe.Message
	}
	return "the server refused (" + pe.Code.String() + ")"
}

// when formats a Unix ms time; today's as a time of day.
func when(ms int64) string {
	if ms <= 0 {
		return "later"
	}
	t := time.UnixMilli(ms)
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format("15:04")
	}
	return t.Format("Mon 2 Jan 15:04")
}

// connState is the connection as the status line shows it.
type connState uint8

const (
	stateConnected connState = iota // TCP up, not logged in
	stateOnline
	stateReconnecting
	stateRedirected
	stateDisconnected
	stateClosed
)

// statusText is the status line's connection part, in words.
func (m *Model) statusText() string {
	switch m.state {
	case stateOnline:
		if m.width < 100 {
			return "online"
		}
		return "online · " + m.addr
	case stateReconnecting:
		return fmt.Sprintf("reconnecting (attempt %d)", m.attempt)
	case stateRedirected:
		return "redirected to " + m.addr
	case stateDisconnected:
		return "disconnected"
	case stateClosed:
		return "closed"
	}
	return "connected · " + m.addr
}

// event turns a connection event into the status line.
func (m *Model) event(e client.Event) {
	if e.Addr != "" {
		m.addr = e.Addr
	}
	switch e.Type {
	case client.EventConnected:
		if m.state != stateReconnecting && m.state != stateRedirected {
			m.state = stateConnected
		}
	case client.EventLoggedIn:
		if m.state == stateReconnecting || m.state == stateRedirected {
			m.say("back online")
		}
		m.state, m.wasOnline = stateOnline, true
	case client.EventDisconnected:
		m.state = stateDisconnected
		if e.Err != nil {
			m.fail("connection lost: " + Plain(e.Err))
		}
	case client.EventReconnecting:
		m.state, m.attempt = stateReconnecting, e.Attempt
		switch {
		case e.Attempt != 1:
		case m.cfg.Resumed && !m.wasOnline:
			m.fail(fmt.Sprintf("offline · %d queued · sent when the server answers", len(m.out)))
		default:
			m.fail("connection lost: reconnecting; messages you send now go out when it is back")
		}
	case client.EventRedirected:
		m.state = stateRedirected
	case client.EventClosed:
		m.state = stateClosed
		s := "the connection is closed"
		if e.Err != nil && !errors.Is(e.Err, client.ErrClosed) {
			s = "closed: " + Plain(e.Err)
		}
		m.fail(s + " — Ctrl+C quits")
	}
}
