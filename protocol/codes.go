package protocol

import "fmt"

// Code is a wire error code carried by Error. Ranges:
//
//	1000-1999  the frame or the connection state is wrong
//	2000-2999  accounts, login and sessions
//	3000-3999  messages and conversations
//	4000-4999  users, friends and groups
//	5000-5999  the server: a retry later may succeed
type Code uint16

// Error codes. docs/protocol.md lists when each is sent.
const (
	CodeBadFrame      Code = 1000 // the frame could not be parsed; the server closes
	CodeFrameTooLarge Code = 1001 // the length field is above the limit; the server closes
	CodeUnknownType   Code = 1002 // the frame type is not one the server accepts from clients
	CodeBadBody       Code = 1003 // the msgpack body is malformed or a field is invalid
	CodeBadVersion    Code = 1004 // the header version is not supported; the server closes
	CodeNotLoggedIn   Code = 1005 // the frame needs a logged-in connection
	CodeAlreadyLogged Code = 1006 // Register or Login on a logged-in connection
	CodeRateLimited   Code = 1007 // too many frames; this one was dropped
	CodeBusy          Code = 1008 // the connection's queue is full; this one was dropped
	// CodeEncryptionRequired: the server takes only encrypted connections
	// and the first frame was not NoiseHello; the server closes.
	CodeEncryptionRequired Code = 1009

	CodeBadCredentials  Code = 2000 // unknown username or wrong password
	CodeUsernameTaken   Code = 2001
	CodeInvalidUsername Code = 2002 // 3-32 of a-z A-Z 0-9 _ . -
	CodeWeakPassword    Code = 2003 // shorter than 8 bytes or longer than 128
	CodeTokenInvalid    Code = 2004 // unknown, revoked or expired resume token
	CodeTooManyAttempts Code = 2005 // failed logins are limited; Until says when to retry
	CodeBanned          Code = 2006 // the account is banned until Until
	CodeTooManySessions Code = 2007 // the account has as many connections as it may have

	CodeNoSuchUser        Code = 3000 // the recipient does not exist
	CodeBadConv           Code = 3001 // the conversation id is malformed, or not the user's
	CodeBadMessage        Code = 3002 // a Send without exactly one recipient, or without client_msg_id
	CodeMessageTooLong    Code = 3003 // the body is above the message size limit
	CodeSelfMessage       Code = 3004 // a 1:1 message to oneself
	CodeClientMsgIDReused Code = 3005 // the client_msg_id was used for another message (other recipient or body)
	CodeSearchTooBroad    Code = 3006 // a search read its limit of messages without a result; use a longer query
	CodeBadAttachment     Code = 3007 // a Send of content_type 1 whose body is not a valid Attachment
	CodeNoSuchMessage     Code = 3008 // ref or reply_to names no message of the conversation (or an event)
	CodeNotSender         Code = 3009 // only the message's sender (for a recall in a group, or its owner) may do this
	CodeRecallExpired     Code = 3010 // the recall window of the message has passed
	CodeRecalled          Code = 3011 // the message was recalled
	CodeEditLimit         Code = 3012 // the message was edited as often as it may be
	CodeReactionLimit     Code = 3013 // the message has as many emoji, or the user as many reactions on it, as allowed
	CodeNoChange          Code = 3014 // the reaction to add is there already, or the one to remove is not
	CodeBadMention        Code = 3015 // too many mentions, a mention of a non-member, or @all by another than the owner
	CodeBadTimer          Code = 3016 // a disappearing-messages timer outside the server's bounds, or a malformed one

	CodeNotFriends       Code = 4000 // a 1:1 message to a user who is not a friend (dm policy "friends")
	CodeAlreadyFriends   Code = 4001 // a friend request to a friend
	CodeRequestExists    Code = 4002 // a friend request already waits for an answer
	CodeNoSuchRequest    Code = 4003 // an answer to a request that does not exist
	CodeNotAFriend       Code = 4004 // deleting a user who is not a friend
	CodeSelfFriend       Code = 4005 // a friend request to oneself
	CodeNoSuchGroup      Code = 4010 // the group does not exist (or was disbanded)
	CodeNotMember        Code = 4011 // the caller (or the named user) is not a member of the group
	CodeNotOwner         Code = 4012 // only the group's owner may do this
	CodeGroupFull        Code = 4013 // the group is at its maximum size
	CodeGroupClosed      Code = 4014 // joining a group that is not open; ask a member for an invite
	CodeAlreadyMember    Code = 4015 // joining a group one is a member of
	CodeOwnerCannotLeave Code = 4016 // the owner must transfer ownership or disband
	CodeBadGroupName     Code = 4017 // a group name must be 1-64 bytes
	CodeBadProfile       Code = 4018 // display name above 64 bytes or avatar URL above 512

	CodeInternal    Code = 5000 // a bug; reported and logged
	CodeUnavailable Code = 5001 // storage or another service is down; nothing was stored
	CodeShutdown    Code = 5002 // the server is shutting down
	CodeTimeout     Code = 5003 // the server could not finish in time; nothing is known to be stored
)

var codeNames = map[Code]string{
	CodeBadFrame: "BAD_FRAME", CodeFrameTooLarge: "FRAME_TOO_LARGE", CodeUnknownType: "UNKNOWN_TYPE",
	CodeBadBody: "BAD_BODY", CodeBadVersion: "BAD_VERSION", CodeNotLoggedIn: "NOT_LOGGED_IN",
	CodeAlreadyLogged: "ALREADY_LOGGED_IN", CodeRateLimited: "RATE_LIMITED", CodeBusy: "BUSY",
	CodeEncryptionRequired: "ENCRYPTION_REQUIRED",
	CodeBadCredentials:     "BAD_CREDENTIALS", CodeUsernameTaken: "USERNAME_TAKEN",
	CodeInvalidUsername: "INVALID_USERNAME", CodeWeakPassword: "WEAK_PASSWORD",
	CodeTokenInvalid: "TOKEN_INVALID", CodeTooManyAttempts: "TOO_MANY_ATTEMPTS", CodeBanned: "BANNED",
	CodeTooManySessions: "TOO_MANY_SESSIONS",
	CodeNoSuchUser:      "NO_SUCH_USER", CodeBadConv: "BAD_CONV", CodeBadMessage: "BAD_MESSAGE",
	CodeMessageTooLong: "MESSAGE_TOO_LONG", CodeSelfMessage: "SELF_MESSAGE",
	CodeClientMsgIDReused: "CLIENT_MSG_ID_REUSED", CodeSearchTooBroad: "SEARCH_TOO_BROAD",
	CodeBadAttachment: "BAD_ATTACHMENT",
	CodeNotFriends:    "NOT_FRIENDS", CodeAlreadyFriends: "ALREADY_FRIENDS", CodeRequestExists: "REQUEST_EXISTS",
	CodeNoSuchMessage: "NO_SUCH_MESSAGE", CodeNotSender: "NOT_SENDER", CodeRecallExpired: "RECALL_EXPIRED",
	CodeRecalled: "RECALLED", CodeEditLimit: "EDIT_LIMIT", CodeReactionLimit: "REACTION_LIMIT",
	CodeNoChange: "NO_CHANGE", CodeBadMention: "BAD_MENTION", CodeBadTimer: "BAD_TIMER",
	CodeNoSuchRequest: "NO_SUCH_REQUEST", CodeNotAFriend: "NOT_A_FRIEND", CodeSelfFriend: "SELF_FRIEND",
	CodeNoSuchGroup: "NO_SUCH_GROUP", CodeNotMember: "NOT_MEMBER", CodeNotOwner: "NOT_OWNER",
	CodeGroupFull: "GROUP_FULL", CodeGroupClosed: "GROUP_CLOSED", CodeAlreadyMember: "ALREADY_MEMBER",
	CodeOwnerCannotLeave: "OWNER_CANNOT_LEAVE", CodeBadGroupName: "BAD_GROUP_NAME", CodeBadProfile: "BAD_PROFILE",
	CodeInternal: "INTERNAL", CodeUnavailable: "UNAVAILABLE", CodeShutdown: "SHUTDOWN", CodeTimeout: "TIMEOUT",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("Code(%d)", uint16(c))
}

// KickReason says why the server closed a connection.
type KickReason uint8

// Kick reasons.
const (
	KickShutdown       KickReason = 1  // the server is stopping; reconnect later or elsewhere
	KickIdle           KickReason = 2  // nothing received for three heartbeat intervals
	KickSlowConsumer   KickReason = 3  // the client did not read; its outbound queue overflowed
	KickProtocolError  KickReason = 4  // the stream could not be parsed; see the Error before it
	KickLogout         KickReason = 5  // the client logged out
	KickBanned         KickReason = 6  // the account was banned; Until is the end
	KickTooManyConns   KickReason = 7  // the server is at its connection limit; try again later
	KickSessionRevoked KickReason = 8  // the session's token was revoked
	KickSlotMoved      KickReason = 9  // the user now belongs to another node (cluster); reconnect
	KickFrameTimeout   KickReason = 10 // a frame did not arrive whole in time
	KickRateLimited    KickReason = 11 // the client kept sending far past its rate limit
	KickHandshake      KickReason = 12 // the Noise handshake failed or came out of turn
	KickDecrypt        KickReason = 13 // an encrypted frame failed authentication (tampered, replayed, reordered or cut)
	KickPlaintext      KickReason = 14 // the server requires encryption and the first frame was not NoiseHello
)

var kickNames = map[KickReason]string{
	KickShutdown: "SHUTDOWN", KickIdle: "IDLE", KickSlowConsumer: "SLOW_CONSUMER",
	KickProtocolError: "PROTOCOL_ERROR", KickLogout: "LOGOUT", KickBanned: "BANNED",
	KickTooManyConns: "TOO_MANY_CONNECTIONS", KickSessionRevoked: "SESSION_REVOKED",
	KickSlotMoved: "SLOT_MOVED", KickFrameTimeout: "FRAME_TIMEOUT",
	KickRateLimited: "RATE_LIMITED", KickHandshake: "HANDSHAKE_FAILED", KickDecrypt: "DECRYPT_FAILED",
	KickPlaintext: "ENCRYPTION_REQUIRED",
}

func (r KickReason) String() string {
	if s, ok := kickNames[r]; ok {
		return s
	}
	return fmt.Sprintf("KickReason(%d)", uint8(r))
}

// Error makes *Error a Go error, so a client can return it and callers can
// match its Code.
func (e *Error) Error() string {
	return fmt.Sprintf("parley: %s: %s", e.Code, e.Message)
}
