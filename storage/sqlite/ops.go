package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The writes: each kind of op, and the Store methods that queue them.

// Append implements storage.Messages: AppendAsync, then the wait. The
// returned message shares its body with the one given to the commit hook:
// neither may be modified.
func (s *Store) Append(ctx context.Context, m *protocol.Message) (protocol.Message, bool, error) {
	type result struct {
		stored protocol.Message
		dup    bool
		err    error
	}
	ch := make(chan result, 1)
	s.AppendAsync(ctx, m, func(stored protocol.Message, dup bool, err error) {
		ch <- result{stored, dup, err}
	})
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		// The append still commits if the writer has started it.
		return protocol.Message{}, false, ctx.Err()
	}
	if r.err != nil {
		return protocol.Message{}, false, r.err
	}
	if !r.dup {
		m.Seq = r.stored.Seq
	}
	return r.stored, r.dup, nil
}

// AppendAsync implements storage.Messages. The message and its body are
// copied before it returns; the writer calls done after the commit (or the
// failure) of the batch that holds it, before it starts the next batch.
func (s *Store) AppendAsync(ctx context.Context, m *protocol.Message, done func(protocol.Message, bool, error)) {
	if s.closed.Load() {
		done(protocol.Message{}, false, storage.ErrClosed)
		return
	}
	if m == nil {
		done(protocol.Message{}, false, errors.New("sqlite: append: nil message"))
		return
	}
	parsed, ok := protocol.ParseConv(m.Conv)
	if !ok {
		done(protocol.Message{}, false, fmt.Errorf("sqlite: append: invalid conversation id %q", m.Conv))
		return
	}
	o := &appendOp{m: *m, parsed: parsed}
	o.m.Seq = 0
	o.m.Body = bytesCopy(m.Body)
	o.notify = func(err error) {
		if err != nil {
			done(protocol.Message{}, false, err)
			return
		}
		done(o.stored, o.dup, nil)
	}
	if err := s.w.enqueue(ctx, o); err != nil {
		done(protocol.Message{}, false, err)
	}
}

type appendOp struct {
	opBase
	m      protocol.Message
	parsed protocol.ParsedConv

	stored protocol.Message
	dup    bool
}

func (o *appendOp) exec(b *batch) error {
	st := &b.w.stmts
	if o.m.ClientMsgID != "" {
		// The transaction sees its own inserts, so this also catches a
		// duplicate queued earlier in the same batch.
		prev, err := scanMessage(b.stmt(st.findDup).QueryRow(o.m.From, o.m.ClientMsgID))
		switch {
		case err == nil:
			o.stored, o.dup = prev, true
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("find duplicate: %w", err)
		}
	}
	last, err := b.lastSeq(o.m.Conv)
	if err != nil {
		return err
	}
	m := o.m
	m.Seq = last + 1
	if _, err := b.exec(st.insertMessage, m.Conv, m.Seq, m.MsgID, m.From, m.To, m.GroupID,
		m.ClientMsgID, m.ContentType, m.Body, m.ServerTime); err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	o.stored = m
	b.appended(m, o.parsed)
	return nil
}

// Ack implements storage.Messages. For a direct conversation it creates the
// user's row if missing; for a group it moves only an existing row, since
// that row is the group membership, which the groups feature owns.
func (s *Store) Ack(ctx context.Context, user int64, conv string, seq uint64) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if seq == 0 {
		return nil
	}
	o := &ackOp{user: user, conv: conv, seq: seq}
	o.mayJoin = canJoin(user, conv)
	return s.w.do(ctx, o)
}

// canJoin reports whether a cursor write may create user's row for conv:
// only in a direct conversation of the user's.
func canJoin(user int64, conv string) bool {
	p, ok := protocol.ParseConv(conv)
	return ok && p.Has(user)
}

type ackOp struct {
	opBase
	user    int64
	conv    string
	seq     uint64
	mayJoin bool
}

func (o *ackOp) exec(b *batch) error {
	last, err := b.lastSeq(o.conv)
	if err != nil {
		return err
	}
	seq := min(o.seq, last)
	if seq == 0 {
		return nil
	}
	st := &b.w.stmts
	if o.mayJoin {
		_, err = b.exec(st.upsertAck, o.user, o.conv, seq)
	} else {
		_, err = b.exec(st.updateAck, seq, o.user, o.conv)
	}
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Hide implements storage.Messages. Sequences above the conversation's last
// one are ignored, so a future message is never hidden in advance. As with
// Ack, upTo creates the user's row only in a direct conversation.
func (s *Store) Hide(ctx context.Context, user int64, conv string, seqs []uint64, upTo uint64) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if len(seqs) == 0 && upTo == 0 {
		return nil
	}
	o := &hideOp{user: user, conv: conv, seqs: append([]uint64(nil), seqs...), upTo: upTo}
	o.mayJoin = canJoin(user, conv)
	return s.w.do(ctx, o)
}

type hideOp struct {
	opBase
	user    int64
	conv    string
	seqs    []uint64
	upTo    uint64
	mayJoin bool
}

func (o *hideOp) exec(b *batch) error {
	last, err := b.lastSeq(o.conv)
	if err != nil {
		return err
	}
	st := &b.w.stmts
	upTo := min(o.upTo, last)
	for _, seq := range o.seqs {
		if seq == 0 || seq > last || seq <= upTo {
			continue
		}
		if _, err := b.exec(st.insertHidden, o.user, o.conv, seq); err != nil {
			return fmt.Errorf("hide: %w", err)
		}
	}
	if upTo == 0 {
		return nil
	}
	if o.mayJoin {
		_, err = b.exec(st.upsertCleared, o.user, o.conv, upTo)
	} else {
		_, err = b.exec(st.updateCleared, upTo, o.user, o.conv)
	}
	if err != nil {
		return fmt.Errorf("clear: %w", err)
	}
	// Rows at or below the cleared seq say nothing more.
	if _, err := b.exec(st.deleteHiddenUpTo, o.user, o.conv, upTo); err != nil {
		return fmt.Errorf("clear hidden: %w", err)
	}
	return nil
}

type createUserOp struct {
	opBase
	user storage.User // ID set by exec
	key  string
}

func (o *createUserOp) exec(b *batch) error {
	st := &b.w.stmts
	var id int64
	err := b.stmt(st.userByKey).QueryRow(o.key).Scan(&id)
	switch {
	case err == nil:
		o.err = storage.ErrUsernameTaken
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("find user: %w", err)
	}
	res, err := b.exec(st.insertUser, o.user.Username, o.key, o.user.PassHash, o.user.Created.UnixMilli())
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	if o.user.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

type tokenKind uint8

const (
	tokenCreate tokenKind = iota
	tokenDelete
	tokenDeleteUser
)

type tokenOp struct {
	opBase
	kind    tokenKind
	hash    []byte
	userID  int64
	expires int64 // Unix ms
}

func (o *tokenOp) exec(b *batch) error {
	st := &b.w.stmts
	var err error
	switch o.kind {
	case tokenCreate:
		_, err = b.exec(st.upsertToken, o.hash, o.userID, o.expires)
	case tokenDelete:
		_, err = b.exec(st.deleteToken, o.hash)
	case tokenDeleteUser:
		_, err = b.exec(st.deleteUserToken, o.userID)
	}
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	return nil
}
