package ui

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// fake is a Backend over a few users, conversations and groups held in
// memory, as one user sees them. It records what the screen asks for.
// Tests run every command on their own goroutine (drive), so it needs no
// lock.
type fake struct {
	me       protocol.UserInfo
	password string
	token    string // the valid resume token
	users    []protocol.UserInfo
	convs    []protocol.Conversation
	history  map[string][]protocol.Message // oldest first
	friends  []protocol.UserInfo
	reqs     protocol.FriendRequestList
	groups   []protocol.GroupInfo
	members  map[int64][]protocol.Member
	open     []protocol.GroupInfo // the directory of open groups, in its order

	sendErrs []error // returned by the next sends, in order
	ids      int

	sent      []protocol.Send
	acks      map[string]uint64
	befores   []uint64 // History's before_seq, per call
	answers   []protocol.FriendAnswer
	requested []protocol.FriendRequest
	created   []protocol.GroupCreate
	invited   []protocol.GroupInvite
	joined    []int64
	setOpen   []protocol.GroupSetOpen
	searched  []string // GroupSearch prefixes
	searches  []protocol.Search
	left      []int64
	deleted   []protocol.DeleteHistory
	prefs     []protocol.ConvPrefs
	typed     []string          // conversations Typing was sent for
	peerRead  map[string]uint64 // Receipts' answer
	delivered map[string]uint64 // Receipts' answer: peer_delivered
}

var (
	alice = protocol.UserInfo{UserID: 1, Username: "alice"}
	bob   = protocol.UserInfo{UserID: 2, Username: "bob"}
	carol = protocol.UserInfo{UserID: 3, Username: "carol"}
	dave  = protocol.UserInfo{UserID: 4, Username: "dave"}
)

const t0 = 1_767_348_000_000 // 2026-01-02 10:00 UTC, in Unix ms

// msg is message seq of conv from user, a minute after the one before.
func msg(conv string, seq uint64, from int64, body string) protocol.Message {
	return protocol.Message{MsgID: int64(seq) * 100, Conv: conv, Seq: seq, From: from, Body: []byte(body), ServerTime: t0 + int64(seq)*60_000}
}

// newFake is alice's world: bob is a friend with a conversation of two
// messages, one unread; carol and dave are strangers.
func newFake() *fake {
	bobConv := protocol.DirectConv(1, 2)
	hist := []protocol.Message{msg(bobConv, 1, 1, "hi bob"), msg(bobConv, 2, 2, "hey alice")}
	return &fake{
		me: alice, password: "alice-password", token: "good-token",
		users:   []protocol.UserInfo{alice, bob, carol, dave},
		convs:   []protocol.Conversation{{Conv: bobConv, LastSeq: 2, AckSeq: 1, Unread: 1, Last: &hist[1]}},
		history: map[string][]protocol.Message{bobConv: hist},
		friends: []protocol.UserInfo{{UserID: 2, Username: "bob", Online: true}},
		members: map[int64][]protocol.Member{},
		acks:    map[string]uint64{},
	}
}

var _ Backend = (*fake)(nil)

// longHistory makes bob's conversation n messages, from bob and alice in
// turn, each body(seq), all read.
func (f *fake) longHistory(n uint64, body func(seq uint64) string) {
	bobConv := protocol.DirectConv(1, 2)
	f.history[bobConv] = nil
	for seq := uint64(1); seq <= n; seq++ {
		f.history[bobConv] = append(f.history[bobConv], msg(bobConv, seq, 2-int64(seq%2), body(seq)))
	}
	f.convs[0].LastSeq, f.convs[0].Unread = n, 0
}

func (f *fake) loginOK() protocol.LoginOK {
	return protocol.LoginOK{UserID: f.me.UserID, Username: f.me.Username, Token: f.token}
}

func (f *fake) Register(_ context.Context, u, p string) (protocol.LoginOK, error) {
	if slices.ContainsFunc(f.users, func(x protocol.UserInfo) bool { return strings.EqualFold(x.Username, u) }) {
		return protocol.LoginOK{}, &protocol.Error{Code: protocol.CodeUsernameTaken}
	}
	f.me = protocol.UserInfo{UserID: 9, Username: u}
	f.password = p
	return f.loginOK(), nil
}

func (f *fake) Login(_ context.Context, u, p string) (protocol.LoginOK, error) {
	if u != f.me.Username || p != f.password {
		return protocol.LoginOK{}, &protocol.Error{Code: protocol.CodeBadCredentials, Message: "bad credentials"}
	}
	return f.loginOK(), nil
}

func (f *fake) LoginToken(_ context.Context, token string) (protocol.LoginOK, error) {
	if token != f.token {
		return protocol.LoginOK{}, &protocol.Error{Code: protocol.CodeTokenInvalid, Message: "token invalid"}
	}
	return f.loginOK(), nil
}

func (f *fake) NewClientMsgID() string {
	f.ids++
	return fmt.Sprintf("c-%d", f.ids)
}

func (f *fake) SendRaw(_ context.Context, s protocol.Send) (protocol.SendAck, error) {
	f.sent = append(f.sent, s)
	if len(f.sendErrs) > 0 {
		err := f.sendErrs[0]
		f.sendErrs = f.sendErrs[1:]
		if err != nil {
			return protocol.SendAck{}, &client.SendError{Send: s, Err: err}
		}
	}
	conv := protocol.GroupConv(s.GroupID)
	if s.To != 0 {
		conv = protocol.DirectConv(f.me.UserID, s.To)
	}
	seq := uint64(len(f.history[conv]) + 1)
	f.history[conv] = append(f.history[conv], msg(conv, seq, f.me.UserID, string(s.Body)))
	return protocol.SendAck{MsgID: int64(seq) * 100, Conv: conv, Seq: seq, ServerTime: t0 + int64(seq)*60_000}, nil
}

func (f *fake) History(_ context.Context, conv string, before uint64, limit uint32) (protocol.HistoryResult, error) {
	f.befores = append(f.befores, before)
	res := protocol.HistoryResult{Conv: conv}
	all := f.history[conv]
	for i := len(all) - 1; i >= 0 && len(res.Messages) < int(limit); i-- {
		if before == 0 || all[i].Seq < before {
			res.Messages = append(res.Messages, all[i])
		}
	}
	if n := len(res.Messages); n > 0 && res.Messages[n-1].Seq > 1 {
		res.HasMore, res.Next = true, res.Messages[n-1].Seq
	}
	return res, nil
}

// Search finds messages of the fake's history holding the query, newest
// first, a page after the query's cursor at a time.
func (f *fake) Search(_ context.Context, q protocol.Search) (protocol.SearchResult, error) {
	f.searches = append(f.searches, q)
	res := protocol.SearchResult{Messages: []protocol.Message{}}
	var all []protocol.Message
	for _, h := range f.history {
		for _, x := range h {
			if strings.Contains(strings.ToLower(string(x.Body)), strings.ToLower(q.Query)) {
				all = append(all, x)
			}
		}
	}
	slices.SortFunc(all, func(a, b protocol.Message) int {
		return cmp.Or(cmp.Compare(b.ServerTime, a.ServerTime), cmp.Compare(a.Conv, b.Conv), cmp.Compare(b.Seq, a.Seq))
	})
	for _, x := range all {
		after := q.BeforeConv == "" || x.ServerTime < q.BeforeTime ||
			(x.ServerTime == q.BeforeTime && (x.Conv > q.BeforeConv || (x.Conv == q.BeforeConv && x.Seq < q.BeforeSeq)))
		if !after {
			continue
		}
		if len(res.Messages) == int(q.Limit) {
			last := res.Messages[len(res.Messages)-1]
			res.HasMore, res.NextTime, res.NextConv, res.NextSeq = true, last.ServerTime, last.Conv, last.Seq
			break
		}
		res.Messages = append(res.Messages, x)
	}
	return res, nil
}

func (f *fake) DeleteHistory(_ context.Context, conv string, seqs []uint64, upTo uint64) error {
	f.deleted = append(f.deleted, protocol.DeleteHistory{Conv: conv, Seqs: seqs, UpTo: upTo})
	return nil
}

func (f *fake) Conversations(context.Context, uint32) ([]protocol.Conversation, error) {
	return slices.Clone(f.convs), nil
}

func (f *fake) Ack(_ context.Context, conv string, seq uint64) error {
	f.acks[conv] = seq
	return nil
}

func (f *fake) SearchUsers(_ context.Context, prefix, _ string, _ uint32) (protocol.UserList, error) {
	var l protocol.UserList
	for _, u := range f.users {
		if strings.HasPrefix(u.Username, strings.ToLower(prefix)) {
			l.Users = append(l.Users, u)
		}
	}
	return l, nil
}

func (f *fake) Profile(_ context.Context, id int64) (protocol.UserInfo, error) {
	for _, u := range f.users {
		if u.UserID == id {
			return u, nil
		}
	}
	return protocol.UserInfo{}, &protocol.Error{Code: protocol.CodeNoSuchUser}
}

func (f *fake) RequestFriend(_ context.Context, user int64, note string) error {
	f.requested = append(f.requested, protocol.FriendRequest{To: user, Note: note})
	return nil
}

func (f *fake) FriendRequests(context.Context) (protocol.FriendRequestList, error) {
	return f.reqs, nil
}

func (f *fake) AnswerFriend(_ context.Context, from int64, accept bool) error {
	f.answers = append(f.answers, protocol.FriendAnswer{From: from, Accept: accept})
	i := slices.IndexFunc(f.reqs.Incoming, func(r protocol.PendingRequest) bool { return r.From.UserID == from })
	if i < 0 {
		return &protocol.Error{Code: protocol.CodeNoSuchRequest}
	}
	if accept {
		f.friends = append(f.friends, f.reqs.Incoming[i].From)
	}
	f.reqs.Incoming = slices.Delete(f.reqs.Incoming, i, i+1)
	return nil
}

func (f *fake) DeleteFriend(context.Context, int64) error { return nil }

func (f *fake) Friends(context.Context) ([]protocol.UserInfo, error) {
	return slices.Clone(f.friends), nil
}

func (f *fake) CreateGroup(_ context.Context, name string, open bool, members ...int64) (protocol.GroupInfo, error) {
	f.created = append(f.created, protocol.GroupCreate{Name: name, Open: open, Members: members})
	g := protocol.GroupInfo{GroupID: 7, Name: name, Owner: f.me.UserID, Open: open, Members: 1 + len(members), Created: t0}
	f.groups = append(f.groups, g)
	return g, nil
}

func (f *fake) JoinGroup(_ context.Context, group int64) (protocol.GroupInfo, error) {
	f.joined = append(f.joined, group)
	g := protocol.GroupInfo{GroupID: group, Name: "lobby", Open: true, Members: 5, Created: t0}
	if i := slices.IndexFunc(f.open, func(x protocol.GroupInfo) bool { return x.GroupID == group }); i >= 0 {
		g = f.open[i]
		g.Members++
	}
	f.groups = append(f.groups, g)
	return g, nil
}

func (f *fake) SearchGroups(_ context.Context, prefix, _ string, _ int64, limit uint32) (protocol.OpenGroupList, error) {
	f.searched = append(f.searched, prefix)
	var res protocol.OpenGroupList
	for _, g := range f.open {
		if strings.HasPrefix(strings.ToLower(g.Name), strings.ToLower(prefix)) {
			if len(res.Groups) == int(limit) {
				res.NextName, res.NextID = strings.ToLower(g.Name), g.GroupID
				break
			}
			res.Groups = append(res.Groups, g)
		}
	}
	return res, nil
}

func (f *fake) OpenGroupsNamed(_ context.Context, name string) ([]protocol.GroupInfo, error) {
	var out []protocol.GroupInfo
	for _, g := range f.open {
		if strings.EqualFold(g.Name, name) {
			out = append(out, g)
		}
	}
	return out, nil
}

func (f *fake) SetGroupOpen(_ context.Context, group int64, open bool) error {
	f.setOpen = append(f.setOpen, protocol.GroupSetOpen{GroupID: group, Open: open})
	return nil
}

func (f *fake) InviteToGroup(_ context.Context, group int64, users ...int64) error {
	f.invited = append(f.invited, protocol.GroupInvite{GroupID: group, Users: users})
	return nil
}

func (f *fake) LeaveGroup(_ context.Context, group int64) error {
	f.left = append(f.left, group)
	f.groups = slices.DeleteFunc(f.groups, func(g protocol.GroupInfo) bool { return g.GroupID == group })
	return nil
}

func (f *fake) Groups(context.Context) ([]protocol.GroupInfo, error) {
	return slices.Clone(f.groups), nil
}

func (f *fake) GroupMembers(_ context.Context, group int64) ([]protocol.Member, error) {
	return f.members[group], nil
}

// drive feeds msg to the model and runs every command it returns, feeding
// their results back, until none is left.
func drive(m *Model, msgs ...tea.Msg) {
	queue := msgs
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		switch next := next.(type) {
		case nil, tea.QuitMsg:
		case tea.BatchMsg:
			for _, c := range next {
				if c != nil {
					queue = append(queue, c())
				}
			}
		default:
			if _, cmd := m.Update(next); cmd != nil {
				queue = append(queue, cmd())
			}
		}
	}
}

// step feeds msg to the model and returns the command without running it.
func step(m *Model, msg tea.Msg) tea.Cmd {
	_, cmd := m.Update(msg)
	return cmd
}

// run runs cmd and everything that follows from it.
func run(m *Model, cmd tea.Cmd) {
	if cmd != nil {
		drive(m, cmd())
	}
}

func typeText(m *Model, s string) {
	for _, r := range s {
		drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func press(m *Model, keys ...tea.KeyType) {
	for _, k := range keys {
		drive(m, tea.KeyMsg{Type: k})
	}
}

// enter types a line and presses Enter.
func enter(m *Model, line string) {
	typeText(m, line)
	press(m, tea.KeyEnter)
}

// loggedIn is alice's screen after a login with her saved token.
func loggedIn(t *testing.T, f *fake) *Model {
	t.Helper()
	m := New(f, Config{Addr: "127.0.0.1:7070", Token: f.token, Username: "alice"})
	drive(m, tea.WindowSizeMsg{Width: 100, Height: 24})
	run(m, m.Init())
	if m.screen != screenChat || m.me != f.me.UserID {
		t.Fatalf("not logged in: screen %d, me %d, notice %q", m.screen, m.me, m.notice)
	}
	return m
}

// screenText is the view with the colours taken out.
func screenText(m *Model) string { return ansi.Strip(m.View()) }

func (f *fake) SetConvPrefs(_ context.Context, conv string, muted, pinned bool) error {
	f.prefs = append(f.prefs, protocol.ConvPrefs{Conv: conv, Muted: muted, Pinned: pinned})
	return nil
}

func (f *fake) Typing(_ context.Context, conv string, stop bool) error {
	f.typed = append(f.typed, conv)
	return nil
}

func (f *fake) Receipts(_ context.Context, conv string, _ ...uint64) (protocol.ReceiptList, error) {
	return protocol.ReceiptList{Conv: conv, PeerRead: f.peerRead[conv], PeerDelivered: f.delivered[conv]}, nil
}
