// Package storetest is the contract suite of storage.Store: every backend
// runs Run from its own tests, so all backends behave alike.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Open returns a new, empty store that passes committed messages to hook
// (which may be nil). Run closes the store when the subtest ends; a Close
// that returns storage.ErrClosed there is fine. Open logs to t.Log and fails
// t on error.
type Open func(t *testing.T, hook storage.CommitHook) storage.Store

// Run runs the contract suite against the backend made by open, each case in
// a subtest of its own with a store of its own.
func Run(t *testing.T, open Open) {
	cases := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"CreateUser", testCreateUser},
		{"UsernameCaseInsensitive", testUsernameCaseInsensitive},
		{"CreateUserConcurrent", testCreateUserConcurrent},
		{"UserNotFound", testUserNotFound},
		{"Tokens", testTokens},
		{"TokenExpiry", testTokenExpiry},
		{"DeleteUserTokens", testDeleteUserTokens},
		{"AppendDenseSeqs", testAppendDenseSeqs},
		{"AppendConcurrent", testAppendConcurrent},
		{"AppendDedupe", testAppendDedupe},
		{"AppendDedupeConcurrent", testAppendDedupeConcurrent},
		{"AppendEmptyClientMsgID", testAppendEmptyClientMsgID},
		{"CommitHook", testCommitHook},
		{"Bodies", testBodies},
		{"GroupConversation", testGroupConversation},
		{"AfterPaging", testAfterPaging},
		{"AfterEmpty", testAfterEmpty},
		{"AfterHidden", testAfterHidden},
		{"BeforePaging", testBeforePaging},
		{"Ack", testAck},
		{"HidePerUser", testHidePerUser},
		{"HideUpTo", testHideUpTo},
		{"HideFuture", testHideFuture},
		{"ConversationsOrder", testConversationsOrder},
		{"ConversationsUnread", testConversationsUnread},
		{"ConversationsLast", testConversationsLast},
		{"ConversationsBothUsers", testConversationsBothUsers},
		{"Closed", testClosed},
	}
	cases = append(cases, asyncCases...)
	cases = append(cases, socialCases...)
	cases = append(cases, searchCases...)
	cases = append(cases, eventCases...)
	cases = append(cases, expiryCases...)
	cases = append(cases, stateCases()...)
	cases = append(cases, deliveredCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

// env is one case's store with helpers that fail the test on error.
type env struct {
	t     *testing.T
	s     storage.Store
	ctx   context.Context
	msgID atomic.Int64
	clock atomic.Int64 // server time in Unix ms, one ms per message
}

func newEnv(t *testing.T, open Open, hook storage.CommitHook) *env {
	t.Helper()
	s := open(t, hook)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{t: t, s: s, ctx: t.Context()}
	e.msgID.Store(1_000_000)
	e.clock.Store(time.Now().UnixMilli())
	return e
}

// users creates n users and returns their ids.
func (e *env) users(n int) []int64 {
	e.t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		u, err := e.s.CreateUser(e.ctx, fmt.Sprintf("user%d", i), []byte("hash"))
		if err != nil {
			e.t.Fatalf("CreateUser: %v", err)
		}
		ids[i] = u.ID
	}
	return ids
}

// direct builds a message from one user to another.
func (e *env) direct(from, to int64, clientMsgID string, body []byte) *protocol.Message {
	return &protocol.Message{
		MsgID:       e.msgID.Add(1),
		Conv:        protocol.DirectConv(from, to),
		From:        from,
		To:          to,
		ClientMsgID: clientMsgID,
		ContentType: 1,
		Body:        body,
		ServerTime:  e.clock.Add(1),
	}
}

// group builds a message to a group.
func (e *env) group(from, group int64, clientMsgID string, body []byte) *protocol.Message {
	return &protocol.Message{
		MsgID:       e.msgID.Add(1),
		Conv:        protocol.GroupConv(group),
		From:        from,
		GroupID:     group,
		ClientMsgID: clientMsgID,
		ContentType: 2,
		Body:        body,
		ServerTime:  e.clock.Add(1),
	}
}

// add appends a message that must be new and returns it as stored.
func (e *env) add(m *protocol.Message) protocol.Message {
	e.t.Helper()
	stored, dup, err := e.s.Append(e.ctx, m)
	if err != nil {
		e.t.Fatalf("Append %s: %v", m.Conv, err)
	}
	if dup {
		e.t.Fatalf("Append %s %q: dup, want new", m.Conv, m.ClientMsgID)
	}
	if m.Seq != stored.Seq {
		e.t.Fatalf("Append left m.Seq %d, stored seq %d", m.Seq, stored.Seq)
	}
	return stored
}

// fill appends n messages from one user to another and returns them.
func (e *env) fill(from, to int64, n int) []protocol.Message {
	e.t.Helper()
	out := make([]protocol.Message, n)
	for i := range out {
		out[i] = e.add(e.direct(from, to, fmt.Sprintf("fill-%d-%d", e.msgID.Load(), i), fmt.Appendf(nil, "message %d", i)))
	}
	return out
}

type afterPage struct {
	msgs          []protocol.Message
	next, lastSeq uint64
	more          bool
}

func (e *env) after(user int64, conv string, afterSeq uint64, limit int) afterPage {
	e.t.Helper()
	msgs, next, last, more, err := e.s.After(e.ctx, user, conv, afterSeq, limit)
	if err != nil {
		e.t.Fatalf("After(%d, %s, %d, %d): %v", user, conv, afterSeq, limit, err)
	}
	return afterPage{msgs, next, last, more}
}

// visible pages through After and returns the seqs user sees in conv.
func (e *env) visible(user int64, conv string) []uint64 {
	e.t.Helper()
	var seqs []uint64
	var at uint64
	for range 10_000 {
		p := e.after(user, conv, at, 7)
		for _, m := range p.msgs {
			seqs = append(seqs, m.Seq)
		}
		if !p.more {
			return seqs
		}
		if p.next <= at {
			e.t.Fatalf("After(%d): next %d does not advance", at, p.next)
		}
		at = p.next
	}
	e.t.Fatal("After pages do not end")
	return nil
}

func (e *env) convs(user int64, limit int) []protocol.Conversation {
	e.t.Helper()
	cs, err := e.s.Conversations(e.ctx, user, limit)
	if err != nil {
		e.t.Fatalf("Conversations(%d): %v", user, err)
	}
	return cs
}

// conv returns user's entry for conv, failing if it is not listed.
func (e *env) conv(user int64, conv string) protocol.Conversation {
	e.t.Helper()
	for _, c := range e.convs(user, 1000) {
		if c.Conv == conv {
			return c
		}
	}
	e.t.Fatalf("Conversations(%d) lacks %s", user, conv)
	return protocol.Conversation{}
}

func (e *env) ack(user int64, conv string, seq uint64) {
	e.t.Helper()
	if err := e.s.Ack(e.ctx, user, conv, seq); err != nil {
		e.t.Fatalf("Ack(%d, %s, %d): %v", user, conv, seq, err)
	}
}

func (e *env) hide(user int64, conv string, seqs []uint64, upTo uint64) {
	e.t.Helper()
	if err := e.s.Hide(e.ctx, user, conv, seqs, upTo); err != nil {
		e.t.Fatalf("Hide(%d, %s, %v, %d): %v", user, conv, seqs, upTo, err)
	}
}

// recorder is a commit hook that keeps what it is given and checks that
// calls never overlap.
type recorder struct {
	t        *testing.T
	inFlight atomic.Int32
	mu       sync.Mutex
	msgs     []protocol.Message
}

func (r *recorder) hook(msgs []protocol.Message) {
	if r.inFlight.Add(1) != 1 {
		r.t.Error("commit hook called concurrently")
	}
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		m.Body = bytes.Clone(m.Body)
		r.msgs = append(r.msgs, m)
	}
}

func (r *recorder) got() []protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...)
}

// has reports whether the hook was given the message with conv and seq.
func (r *recorder) has(conv string, seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.Conv == conv && m.Seq == seq {
			return true
		}
	}
	return false
}

// sameMessage fails t unless got equals want in every field. Nil and empty
// bodies are equal.
func sameMessage(t *testing.T, what string, got, want protocol.Message) {
	t.Helper()
	same := got.MsgID == want.MsgID && got.Conv == want.Conv && got.Seq == want.Seq &&
		got.From == want.From && got.To == want.To && got.GroupID == want.GroupID &&
		got.ClientMsgID == want.ClientMsgID && got.ContentType == want.ContentType &&
		got.ServerTime == want.ServerTime && bytes.Equal(got.Body, want.Body)
	if !same {
		gb, wb := got.Body, want.Body
		got.Body, want.Body = nil, nil
		t.Errorf("%s:\n got %+v body %.64q\nwant %+v body %.64q", what, got, gb, want, wb)
	}
}

func seqsOf(msgs []protocol.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func seqRange(lo, hi uint64) []uint64 {
	var out []uint64
	for s := lo; s <= hi; s++ {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testCreateUser(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	before := time.Now().Add(-time.Second)
	alice, err := e.s.CreateUser(e.ctx, "Alice", []byte("hash-a"))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	after := time.Now().Add(time.Second)
	if alice.ID <= 0 || alice.Username != "Alice" || string(alice.PassHash) != "hash-a" {
		t.Errorf("CreateUser = %+v", alice)
	}
	if alice.Created.Before(before) || alice.Created.After(after) {
		t.Errorf("Created %v not near now", alice.Created)
	}
	bob, err := e.s.CreateUser(e.ctx, "bob", []byte("hash-b"))
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if bob.ID <= alice.ID {
		t.Errorf("second id %d not above first %d", bob.ID, alice.ID)
	}
	for _, name := range []string{"Alice", "alice", "ALICE"} {
		u, err := e.s.UserByName(e.ctx, name)
		if err != nil {
			t.Fatalf("UserByName(%q): %v", name, err)
		}
		if u.ID != alice.ID || u.Username != "Alice" || !bytes.Equal(u.PassHash, alice.PassHash) || !u.Created.Equal(alice.Created) {
			t.Errorf("UserByName(%q) = %+v, want %+v", name, u, alice)
		}
	}
	u, err := e.s.UserByID(e.ctx, bob.ID)
	if err != nil {
		t.Fatalf("UserByID: %v", err)
	}
	if u.ID != bob.ID || u.Username != "bob" || string(u.PassHash) != "hash-b" || !u.Created.Equal(bob.Created) {
		t.Errorf("UserByID = %+v, want %+v", u, bob)
	}
}

func testUsernameCaseInsensitive(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	for _, first := range []string{"Carol", "Ärger"} {
		if _, err := e.s.CreateUser(e.ctx, first, []byte("h")); err != nil {
			t.Fatalf("CreateUser(%q): %v", first, err)
		}
	}
	for _, name := range []string{"Carol", "carol", "CAROL", "cArOl", "ärger", "ÄRGER"} {
		if _, err := e.s.CreateUser(e.ctx, name, []byte("h")); !errors.Is(err, storage.ErrUsernameTaken) {
			t.Errorf("CreateUser(%q) = %v, want ErrUsernameTaken", name, err)
		}
	}
	u, err := e.s.UserByName(e.ctx, "äRGER")
	if err != nil || u.Username != "Ärger" {
		t.Errorf("UserByName(äRGER) = %+v, %v", u, err)
	}
	if _, err := e.s.CreateUser(e.ctx, "Carol2", []byte("h")); err != nil {
		t.Errorf("CreateUser(Carol2) after failures: %v", err)
	}
}

// testCreateUserConcurrent races one name in many letter cases alongside
// distinct names: one of the first wins, and every distinct name is created
// (a taken name fails alone, not the writes around it).
func testCreateUserConcurrent(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	const n = 24
	var wg sync.WaitGroup
	var won, taken atomic.Int32
	ids := make([]int64, n)
	for i := range n {
		wg.Go(func() {
			name := "dave"
			if i%2 == 1 {
				name = "DAVE"
			}
			_, err := e.s.CreateUser(e.ctx, name, []byte("h"))
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, storage.ErrUsernameTaken):
				taken.Add(1)
			default:
				t.Errorf("CreateUser(%q): %v", name, err)
			}
		})
		wg.Go(func() {
			u, err := e.s.CreateUser(e.ctx, fmt.Sprintf("distinct%d", i), []byte("h"))
			if err != nil {
				t.Errorf("CreateUser(distinct%d): %v", i, err)
			}
			ids[i] = u.ID
		})
	}
	wg.Wait()
	if won.Load() != 1 || taken.Load() != n-1 {
		t.Errorf("same name: %d created, %d taken; want 1 and %d", won.Load(), taken.Load(), n-1)
	}
	seen := map[int64]bool{}
	for i, id := range ids {
		if seen[id] {
			t.Errorf("user id %d given twice", id)
		}
		seen[id] = true
		if u, err := e.s.UserByID(e.ctx, id); err != nil || u.Username != fmt.Sprintf("distinct%d", i) {
			t.Errorf("UserByID(%d) = %+v, %v", id, u, err)
		}
	}
}

func testUserNotFound(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(1)
	if _, err := e.s.UserByName(e.ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserByName(nobody) = %v, want ErrNotFound", err)
	}
	if _, err := e.s.UserByID(e.ctx, ids[0]+1000); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserByID(unknown) = %v, want ErrNotFound", err)
	}
}

// ms is now to the millisecond, the precision backends keep.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

func testTokens(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	now := ms(time.Now())
	exp := now.Add(time.Hour)
	hash := []byte("token-hash-0123456789abcdef-0001")
	orig := bytes.Clone(hash)
	if err := e.s.CreateToken(e.ctx, hash, ids[0], exp); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	hash[0] ^= 0xff // the store must have kept its own copy
	user, gotExp, err := e.s.TokenUser(e.ctx, orig, now)
	if err != nil || user != ids[0] || !gotExp.Equal(exp) {
		t.Fatalf("TokenUser = %d, %v, %v; want %d, %v", user, gotExp, err, ids[0], exp)
	}
	if _, _, err := e.s.TokenUser(e.ctx, hash, now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("TokenUser(unknown) = %v, want ErrNotFound", err)
	}
	other := []byte("token-hash-0123456789abcdef-0002")
	if err := e.s.CreateToken(e.ctx, other, ids[1], exp); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if err := e.s.DeleteToken(e.ctx, orig); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	if _, _, err := e.s.TokenUser(e.ctx, orig, now); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("TokenUser after DeleteToken = %v, want ErrNotFound", err)
	}
	if err := e.s.DeleteToken(e.ctx, orig); err != nil {
		t.Errorf("DeleteToken(deleted) = %v, want nil", err)
	}
	if user, _, err := e.s.TokenUser(e.ctx, other, now); err != nil || user != ids[1] {
		t.Errorf("other token after DeleteToken = %d, %v", user, err)
	}
}

func testTokenExpiry(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(1)
	exp := ms(time.Now().Add(time.Minute))
	hash := []byte("expiring")
	if err := e.s.CreateToken(e.ctx, hash, ids[0], exp); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	for _, c := range []struct {
		now   time.Time
		found bool
	}{
		{exp.Add(-time.Hour), true},
		{exp.Add(-time.Millisecond), true},
		{exp, false},
		{exp.Add(time.Millisecond), false},
		{exp.Add(time.Hour), false},
	} {
		_, _, err := e.s.TokenUser(e.ctx, hash, c.now)
		if c.found && err != nil || !c.found && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("TokenUser at expiry%+v = %v, want found %v", c.now.Sub(exp), err, c.found)
		}
	}
}

func testDeleteUserTokens(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	now := ms(time.Now())
	exp := now.Add(time.Hour)
	var mine [][]byte
	for i := range 3 {
		h := fmt.Appendf(nil, "a-%d", i)
		mine = append(mine, h)
		if err := e.s.CreateToken(e.ctx, h, ids[0], exp); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
	}
	if err := e.s.CreateToken(e.ctx, []byte("b-0"), ids[1], exp); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if err := e.s.DeleteUserTokens(e.ctx, ids[0]); err != nil {
		t.Fatalf("DeleteUserTokens: %v", err)
	}
	for _, h := range mine {
		if _, _, err := e.s.TokenUser(e.ctx, h, now); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("TokenUser(%s) after DeleteUserTokens = %v, want ErrNotFound", h, err)
		}
	}
	if user, _, err := e.s.TokenUser(e.ctx, []byte("b-0"), now); err != nil || user != ids[1] {
		t.Errorf("another user's token = %d, %v; want kept", user, err)
	}
	if err := e.s.DeleteUserTokens(e.ctx, ids[0]); err != nil {
		t.Errorf("DeleteUserTokens again: %v", err)
	}
}

func testClosed(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	conv := protocol.DirectConv(ids[0], ids[1])
	e.fill(ids[0], ids[1], 2)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := e.ctx
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	_, err := e.s.CreateUser(ctx, "late", []byte("h"))
	check("CreateUser", err)
	_, err = e.s.UserByName(ctx, "user0")
	check("UserByName", err)
	_, err = e.s.UserByID(ctx, ids[0])
	check("UserByID", err)
	check("CreateToken", e.s.CreateToken(ctx, []byte("t"), ids[0], time.Now().Add(time.Hour)))
	_, _, err = e.s.TokenUser(ctx, []byte("t"), time.Now())
	check("TokenUser", err)
	check("DeleteToken", e.s.DeleteToken(ctx, []byte("t")))
	check("DeleteUserTokens", e.s.DeleteUserTokens(ctx, ids[0]))
	_, _, err = e.s.Append(ctx, e.direct(ids[0], ids[1], "late", []byte("x")))
	check("Append", err)
	_, _, _, _, err = e.s.After(ctx, ids[0], conv, 0, 10)
	check("After", err)
	_, _, _, err = e.s.Before(ctx, ids[0], conv, 0, 10)
	check("Before", err)
	check("Ack", e.s.Ack(ctx, ids[1], conv, 1))
	check("Hide", e.s.Hide(ctx, ids[1], conv, []uint64{1}, 0))
	_, err = e.s.Conversations(ctx, ids[0], 10)
	check("Conversations", err)
	check("Close", e.s.Close())
}
