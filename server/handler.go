package server

import (
	"context"
	"errors"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// A frame type is a registration, not a switch case: handlers maps each
// frame type a client may send (Ping aside, which the event loop answers) to
// its handler, the login state it needs and the type of its success reply.
// A handler returns the reply body or an error; fail turns every error into
// an Error frame. Adding a frame type is one protocol struct, one line here,
// one handler and its test.
var handlers = table(
	// Accounts (auth.go).
	route(protocol.TypeRegister, anonymous, protocol.TypeLoginOK, (*Server).handleRegister),
	route(protocol.TypeLogin, anonymous, protocol.TypeLoginOK, (*Server).handleLogin),
	route(protocol.TypeLogout, loggedIn, protocol.TypeOK, (*Server).handleLogout),

	// Messages (chat.go).
	route(protocol.TypeSend, loggedIn, protocol.TypeSendAck, (*Server).handleSend),
	route(protocol.TypeAck, loggedIn, protocol.TypeOK, (*Server).handleAck),
	route(protocol.TypeSync, loggedIn, protocol.TypeSyncResult, (*Server).handleSync),
	route(protocol.TypeHistory, loggedIn, protocol.TypeHistoryResult, (*Server).handleHistory),
	route(protocol.TypeDeleteHistory, loggedIn, protocol.TypeOK, (*Server).handleDeleteHistory),
	route(protocol.TypeConversations, loggedIn, protocol.TypeConversationList, (*Server).handleConversations),

	// Conversation events (events.go); recall, edit and reactions are Sends.
	route(protocol.TypeEditHistory, loggedIn, protocol.TypeEditHistoryList, (*Server).handleEditHistory),
	route(protocol.TypeReactors, loggedIn, protocol.TypeReactorList, (*Server).handleReactors),

	// Receipts, typing and per-user conversation state (receipts.go).
	route(protocol.TypeTyping, loggedIn, protocol.TypeOK, (*Server).handleTyping),
	route(protocol.TypeReceived, loggedIn, protocol.TypeOK, (*Server).handleReceived),
	route(protocol.TypeReceipts, loggedIn, protocol.TypeReceiptList, (*Server).handleReceipts),
	route(protocol.TypeReaders, loggedIn, protocol.TypeReaderList, (*Server).handleReaders),
	route(protocol.TypeConvPrefs, loggedIn, protocol.TypeOK, (*Server).handleConvPrefs),
	route(protocol.TypeSettings, loggedIn, protocol.TypeSettingsInfo, (*Server).handleSettings),

	// Users and friends (social.go).
	route(protocol.TypeUserSearch, loggedIn, protocol.TypeUserList, (*Server).handleUserSearch),
	route(protocol.TypeProfileGet, loggedIn, protocol.TypeUserInfo, (*Server).handleProfileGet),
	route(protocol.TypeProfileUpdate, loggedIn, protocol.TypeUserInfo, (*Server).handleProfileUpdate),
	route(protocol.TypeFriendRequest, loggedIn, protocol.TypeOK, (*Server).handleFriendRequest),
	route(protocol.TypeFriendRequests, loggedIn, protocol.TypeFriendReqList, (*Server).handleFriendRequests),
	route(protocol.TypeFriendAnswer, loggedIn, protocol.TypeOK, (*Server).handleFriendAnswer),
	route(protocol.TypeFriendDelete, loggedIn, protocol.TypeOK, (*Server).handleFriendDelete),
	route(protocol.TypeFriends, loggedIn, protocol.TypeFriendList, (*Server).handleFriends),

	// Groups (groups.go).
	route(protocol.TypeGroupCreate, loggedIn, protocol.TypeGroupInfo, (*Server).handleGroupCreate),
	route(protocol.TypeGroupJoin, loggedIn, protocol.TypeGroupInfo, (*Server).handleGroupJoin),
	route(protocol.TypeGroupInvite, loggedIn, protocol.TypeOK, (*Server).handleGroupInvite),
	route(protocol.TypeGroupLeave, loggedIn, protocol.TypeOK, (*Server).handleGroupLeave),
	route(protocol.TypeGroupRename, loggedIn, protocol.TypeOK, (*Server).handleGroupRename),
	route(protocol.TypeGroupRemove, loggedIn, protocol.TypeOK, (*Server).handleGroupRemove),
	route(protocol.TypeGroupTransfer, loggedIn, protocol.TypeOK, (*Server).handleGroupTransfer),
	route(protocol.TypeGroupDisband, loggedIn, protocol.TypeOK, (*Server).handleGroupDisband),
	route(protocol.TypeGroups, loggedIn, protocol.TypeGroupList, (*Server).handleGroups),
	route(protocol.TypeGroupMembers, loggedIn, protocol.TypeMemberList, (*Server).handleGroupMembers),

	// Search (search.go).
	route(protocol.TypeSearch, loggedIn, protocol.TypeSearchResult, (*Server).handleSearch),

	// The directory of open groups (groupdir.go).
	route(protocol.TypeGroupSetOpen, loggedIn, protocol.TypeOK, (*Server).handleGroupSetOpen),
	route(protocol.TypeGroupSearch, loggedIn, protocol.TypeOpenGroupList, (*Server).handleGroupSearch),
)

// authNeed is the login state a frame type needs.
type authNeed uint8

const (
	loggedIn  authNeed = iota // NOT_LOGGED_IN before a login
	anonymous                 // Register and Login: ALREADY_LOGGED_IN after one
)

// call is one frame being handled: what a handler is given besides its body.
type call struct {
	ctx   context.Context
	ss    *session
	user  int64 // the logged-in user; 0 for anonymous frame types
	reqID uint32
	at    int64 // Unix ns when the event loop decoded the frame

	// with, if a handler sets it, runs in the same step as the reply is
	// queued to the connection, under its outbound lock (session.writeWith;
	// a login joins the hub). then, if set, runs after the reply has been
	// queued (Logout closes the connection).
	with func()
	then func()

	rc   reqContext // ctx
	kept bool       // the handler took over ending ctx (keep)
}

// keep hands ctx to a handler that goes on using it after it returns (a
// Send waiting for its commit); the handler must cancel it.
func (c *call) keep() *reqContext {
	c.kept = true
	return &c.rc
}

// later is the reply of a handler that answers by itself once its work
// completes (Send: the SendAck follows the commit).
var later = &struct{ later bool }{true}

// handler is one registration of the table.
type handler struct {
	typ   protocol.Type
	auth  authNeed
	reply protocol.Type
	run   func(s *Server, c *call, body any) (any, error)
}

// route registers fn for frames of type typ; fn gets the decoded body.
func route[T any](typ protocol.Type, auth authNeed, reply protocol.Type, fn func(*Server, *call, *T) (any, error)) handler {
	return handler{typ: typ, auth: auth, reply: reply, run: func(s *Server, c *call, body any) (any, error) {
		b, ok := body.(*T)
		if !ok {
			return nil, refuse(protocol.CodeBadBody, "unexpected body for "+typ.String())
		}
		return fn(s, c, b)
	}}
}

func table(hs ...handler) map[protocol.Type]*handler {
	m := make(map[protocol.Type]*handler, len(hs))
	for i := range hs {
		h := &hs[i]
		if _, dup := m[h.typ]; dup {
			panic("server: frame type registered twice: " + h.typ.String())
		}
		m[h.typ] = h
	}
	return m
}

// otherFrame is a reply of another type than the registered one, with its
// own request id (a Login answered by a Redirect).
type otherFrame struct {
	typ   protocol.Type
	reqID uint32
	body  any
}

// protoError is a refusal that a handler answers: an Error frame with its
// code. Errors that are not protoErrors are failures of the server's
// services, which fail maps to codes of the 5000 range.
type protoError struct {
	code  protocol.Code
	msg   string
	until int64 // Unix ms, for TOO_MANY_ATTEMPTS and BANNED
}

func (e *protoError) Error() string { return e.code.String() + ": " + e.msg }

// refuse returns the protocol error with code and message.
func refuse(code protocol.Code, msg string) error { return &protoError{code: code, msg: msg} }

// refuseCode is refuse with the standard message of a code that several
// handlers answer.
func refuseCode(code protocol.Code) error {
	msg, ok := codeText[code]
	if !ok {
		msg = code.String()
	}
	return &protoError{code: code, msg: msg}
}

var codeText = map[protocol.Code]string{
	protocol.CodeNoSuchUser:    "no such user",
	protocol.CodeNoSuchGroup:   "no such group",
	protocol.CodeNotMember:     "not a member of the group",
	protocol.CodeNotOwner:      "only the group's owner may do this",
	protocol.CodeNotFriends:    "only friends may message each other",
	protocol.CodeBadConv:       "not a conversation of yours",
	protocol.CodeGroupFull:     "the group would pass its maximum size",
	protocol.CodeAlreadyMember: "already a member",
}

// fail appends the Error frame that answers err, the one place where errors
// become codes: a protoError says its own; the storage errors a handler
// does not handle itself are the store's domain errors, a closed store
// (shutdown), a timeout, or the service failing.
func (s *Server) fail(out []byte, reqID uint32, t protocol.Type, err error) []byte {
	e := &protocol.Error{}
	var pe *protoError
	switch {
	case errors.As(err, &pe):
		e.Code, e.Message, e.Until = pe.code, pe.msg, pe.until
	case errors.Is(err, storage.ErrGroupFull):
		e.Code, e.Message = protocol.CodeGroupFull, codeText[protocol.CodeGroupFull]
	case errors.Is(err, storage.ErrNotMember):
		e.Code, e.Message = protocol.CodeNotMember, codeText[protocol.CodeNotMember]
	case errors.Is(err, storage.ErrAlreadyMember):
		e.Code, e.Message = protocol.CodeAlreadyMember, codeText[protocol.CodeAlreadyMember]
	case errors.Is(err, storage.ErrNotTarget):
		e.Code, e.Message = protocol.CodeNoSuchMessage, "no such message in the conversation"
	case errors.Is(err, storage.ErrRecalled):
		e.Code, e.Message = protocol.CodeRecalled, "the message was recalled"
	case errors.Is(err, storage.ErrEditLimit):
		e.Code, e.Message = protocol.CodeEditLimit, "the message was edited as often as it may be"
	case errors.Is(err, storage.ErrReactionLimit):
		e.Code, e.Message = protocol.CodeReactionLimit, "too many reactions on the message (20 emoji, 3 per user)"
	case errors.Is(err, storage.ErrNoChange):
		e.Code, e.Message = protocol.CodeNoChange, "the reaction is already there, or is not there"
	case errors.Is(err, storage.ErrClosed):
		e.Code, e.Message = protocol.CodeShutdown, "server shutting down"
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("storage timeout", "op", t.String(), "err", err)
		e.Code, e.Message = protocol.CodeTimeout, t.String()+" timed out; retry"
	default:
		s.log.Error("storage failure", "op", t.String(), "err", err)
		e.Code, e.Message = protocol.CodeUnavailable, "storage unavailable; retry"
	}
	out, _ = protocol.AppendFrame(out, protocol.TypeError, reqID, e)
	return out
}

// respond appends a handler's result: its reply, or the Error frame.
func (s *Server) respond(out []byte, h *handler, reqID uint32, reply any, err error) []byte {
	if err != nil {
		return s.fail(out, reqID, h.typ, err)
	}
	if reply == later {
		return out
	}
	if o, ok := reply.(*otherFrame); ok {
		out, _ = protocol.AppendFrame(out, o.typ, o.reqID, o.body)
		return out
	}
	return appendReply(out, h.reply, reqID, reply)
}
