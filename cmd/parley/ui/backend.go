package ui

import (
	"context"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// The screen talks to the server through these interfaces; *client.Client
// has them all. Every method blocks until the server answers or ctx ends,
// returns a refusal as a *protocol.Error, and is called from a tea.Cmd
// goroutine, possibly several at once. While the client reconnects, a call
// waits for the next login within ctx.

// Session logs in.
type Session interface {
	Register(ctx context.Context, username, password string) (protocol.LoginOK, error)
	Login(ctx context.Context, username, password string) (protocol.LoginOK, error)
	// LoginToken resumes with a token of an earlier login; an unknown,
	// revoked or expired token is refused with TOKEN_INVALID, and the
	// connection stays open for Login.
	LoginToken(ctx context.Context, token string) (protocol.LoginOK, error)
}

// Chat sends and reads messages.
type Chat interface {
	// NewClientMsgID returns an id no other Send of this client used. It
	// does no I/O.
	NewClientMsgID() string
	// SendRaw stores s once however often it is repeated with the same
	// ClientMsgID: after a timeout or a drop, repeating it is safe.
	SendRaw(ctx context.Context, s protocol.Send) (protocol.SendAck, error)
	// History pages backwards from beforeSeq (0: the newest), newest first.
	History(ctx context.Context, conv string, beforeSeq uint64, limit uint32) (protocol.HistoryResult, error)
	// DeleteHistory hides messages from this user only.
	DeleteHistory(ctx context.Context, conv string, seqs []uint64, upTo uint64) error
	// Conversations lists the user's conversations, most recent first,
	// with unread counts.
	Conversations(ctx context.Context, limit uint32) ([]protocol.Conversation, error)
	// Ack moves the read cursor of conv forward to seq.
	Ack(ctx context.Context, conv string, seq uint64) error
	// Search finds the user's messages holding every word, newest first.
	Search(ctx context.Context, q protocol.Search) (protocol.SearchResult, error)
	// SetConvPrefs sets the user's muted and pinned flags of conv.
	SetConvPrefs(ctx context.Context, conv string, muted, pinned bool) error
	// Receipts reads what the other user of a direct conversation read.
	Receipts(ctx context.Context, conv string, seqs ...uint64) (protocol.ReceiptList, error)
	// Typing tells the others of conv that the user types.
	Typing(ctx context.Context, conv string, stop bool) error
}

// Social covers users, friends and groups.
type Social interface {
	SearchUsers(ctx context.Context, prefix, after string, limit uint32) (protocol.UserList, error)
	Profile(ctx context.Context, user int64) (protocol.UserInfo, error)
	RequestFriend(ctx context.Context, user int64, note string) error
	FriendRequests(ctx context.Context) (protocol.FriendRequestList, error)
	AnswerFriend(ctx context.Context, from int64, accept bool) error
	DeleteFriend(ctx context.Context, user int64) error
	Friends(ctx context.Context) ([]protocol.UserInfo, error)
	CreateGroup(ctx context.Context, name string, open bool, members ...int64) (protocol.GroupInfo, error)
	JoinGroup(ctx context.Context, group int64) (protocol.GroupInfo, error)
	// SearchGroups pages through the open groups whose name starts with
	// prefix; OpenGroupsNamed lists those named name, ignoring case.
	SearchGroups(ctx context.Context, prefix, afterName string, afterID int64, limit uint32) (protocol.OpenGroupList, error)
	OpenGroupsNamed(ctx context.Context, name string) ([]protocol.GroupInfo, error)
	// SetGroupOpen opens or closes a group the user owns.
	SetGroupOpen(ctx context.Context, group int64, open bool) error
	InviteToGroup(ctx context.Context, group int64, users ...int64) error
	LeaveGroup(ctx context.Context, group int64) error
	Groups(ctx context.Context) ([]protocol.GroupInfo, error)
	GroupMembers(ctx context.Context, group int64) ([]protocol.Member, error)
}

// Backend is everything the screen asks of the server.
type Backend interface {
	Session
	Chat
	Social
}

// Source is where pushes come from: messages, connection events and
// friend, group and presence notices. Each channel is closed when the
// client is.
type Source interface {
	Messages() <-chan protocol.Message
	Events() <-chan client.Event
	Notices() <-chan client.Notice
}

var (
	_ Backend = (*client.Client)(nil)
	_ Source  = (*client.Client)(nil)
)

// Sender is what Pump feeds: a *tea.Program. Send must not block for long
// after the program has ended (tea.Program's does not).
type Sender interface{ Send(tea.Msg) }

// Pump forwards what src pushes to p, as IncomingMsg, EventMsg and
// NoticeMsg, in the order of each channel, until src closes them.
func Pump(p Sender, src Source) {
	go func() {
		for m := range src.Messages() {
			p.Send(IncomingMsg{M: m})
		}
	}()
	go func() {
		for e := range src.Events() {
			p.Send(EventMsg{E: e})
		}
	}()
	go func() {
		for n := range src.Notices() {
			p.Send(NoticeMsg{N: n})
		}
	}()
}
