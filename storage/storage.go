// Package storage keeps Parley's durable state behind small interfaces: users,
// resume tokens, and messages with their per-user cursors. Each backend lives
// in a package of its own (storage/pebble, the embedded default; storage/mysql
// for a cluster) and passes the same contract suite, storage/storetest.
package storage

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/fulltext"
)

// Errors every backend returns for the cases below, matched with errors.Is.
// Any other error means the backend could not do the work (the database is
// down, a disk is full): the caller reports the service as unavailable and
// nothing was written.
var (
	ErrNotFound      = errors.New("storage: not found")
	ErrUsernameTaken = errors.New("storage: username taken")
	ErrClosed        = errors.New("storage: store closed")
)

// User is an account.
type User struct {
	ID       int64
	Username string // unique, compared case-insensitively
	PassHash []byte // bcrypt or argon2id encoded hash; never sent to clients
	Created  time.Time
}

// Users stores accounts.
type Users interface {
	// CreateUser adds an account with the next free id. A username that
	// differs from an existing one only in letter case is taken
	// (ErrUsernameTaken).
	CreateUser(ctx context.Context, username string, passHash []byte) (User, error)
	// UserByName finds an account by username, ignoring letter case
	// (ErrNotFound).
	UserByName(ctx context.Context, username string) (User, error)
	// UserByID finds an account by id (ErrNotFound).
	UserByID(ctx context.Context, id int64) (User, error)
}

// Tokens stores resume tokens. The store keeps only a hash of each token, so
// a copy of the database does not log anyone in.
type Tokens interface {
	// CreateToken records a token hash for a user until expires.
	CreateToken(ctx context.Context, hash []byte, userID int64, expires time.Time) error
	// TokenUser returns the user and expiry of a token that exists and has
	// not expired at now; otherwise ErrNotFound.
	TokenUser(ctx context.Context, hash []byte, now time.Time) (userID int64, expires time.Time, err error)
	// DeleteToken revokes a token; revoking an unknown token is not an error.
	DeleteToken(ctx context.Context, hash []byte) error
	// DeleteUserTokens revokes every token of a user.
	DeleteUserTokens(ctx context.Context, userID int64) error
}

// Messages stores conversations: their messages with dense sequence numbers,
// and for each user a read cursor and the messages the user has hidden.
//
// A conversation id is protocol.DirectConv or protocol.GroupConv. The users of
// a direct conversation are known from its id; they are its members from its
// first message on.
type Messages interface {
	// Append stores m as the next message of m.Conv: it sets m.Seq to the
	// conversation's last sequence plus one (1 for the first), so sequences
	// are dense and follow commit order. The caller fills every other field:
	// MsgID (unique), From, To or GroupID, ClientMsgID, ServerTime.
	//
	// If From already stored a message with the same non-empty ClientMsgID
	// (in any conversation), nothing is written and Append returns that
	// message with dup true.
	//
	// When Append returns nil the message is durable: it survives a crash of
	// the process and of the machine. On error nothing was stored and no
	// sequence number was used. Append is safe for concurrent use; a backend
	// batches concurrent calls into one transaction (group commit).
	Append(ctx context.Context, m *protocol.Message) (stored protocol.Message, dup bool, err error)

	// AppendAsync is Append without waiting for the commit. done is called exactly once, from the
	// backend's writer, after the batch holding m is durable (stored, dup, nil) or has failed (err);
	// done must not block. Messages handed in by one goroutine are committed in call order (within a
	// conversation their seqs ascend in call order). If ctx ends before m joins a batch, done gets
	// ctx.Err() and nothing is stored.
	//
	// A call that fails before m is queued (the store is closed, m is
	// invalid, ctx has already ended) calls done before AppendAsync returns,
	// on the caller's goroutine. AppendAsync copies m (its body too) before
	// it returns and does not modify it; it may wait while the backend's
	// queue is full. When done gets a nil error, reads (After, Before,
	// Conversations) already see the message.
	AppendAsync(ctx context.Context, m *protocol.Message, done func(stored protocol.Message, dup bool, err error))

	// After returns messages of conv with Seq > afterSeq, oldest first, at
	// most limit, skipping those user has hidden. next is the afterSeq to ask
	// for the following page (the highest sequence examined), lastSeq the
	// conversation's newest sequence, and more whether messages above next
	// exist. A conversation with no messages gives no error and lastSeq 0.
	After(ctx context.Context, user int64, conv string, afterSeq uint64, limit int) (msgs []protocol.Message, next, lastSeq uint64, more bool, err error)

	// Before returns messages of conv with Seq < beforeSeq (0 means from the
	// newest), newest first, at most limit, skipping those user has hidden.
	// next is the beforeSeq of the following (older) page.
	Before(ctx context.Context, user int64, conv string, beforeSeq uint64, limit int) (msgs []protocol.Message, next uint64, more bool, err error)

	// Ack moves user's read cursor in conv forward to seq. A seq at or below
	// the cursor changes nothing; a seq above the conversation's last
	// sequence is clamped to it.
	Ack(ctx context.Context, user int64, conv string, seq uint64) error

	// Hide removes messages of conv for user only: every seq in seqs, and
	// every message up to and including upTo when upTo > 0. Other users still
	// see them.
	Hide(ctx context.Context, user int64, conv string, seqs []uint64, upTo uint64) error

	// Conversations lists the conversations user is a member of that have at
	// least one message, most recent message first, at most limit. For each:
	// its last sequence, the user's cursor, the number of unread messages
	// (messages after the cursor, not sent by the user, not hidden) and the
	// last message the user has not hidden (nil if none).
	Conversations(ctx context.Context, user int64, limit int) ([]protocol.Conversation, error)
}

// Store is everything a Parley node keeps durably.
type Store interface {
	Users
	Tokens
	Messages
	Events
	Profiles
	Friends
	Groups
	Bans
	// Close flushes pending writes and releases the backend. Calls after
	// Close return ErrClosed.
	Close() error
}

// Searcher is the optional ability of a store to search message text
// (storage/fulltext): both backends have it, found by type assertion.
//
// A search sees what History shows the user: the conversations the user is
// a member of now, messages after the user joined (a group's membership
// starts at the seq it joined at) and after what the user cleared, none the
// user hid, and each message as it is stored now (an edited message by its
// latest text, not by earlier versions). Messages become searchable
// shortly after their commit, once the indexer has read them (IndexFlush
// waits for that).
type Searcher interface {
	// Search returns a page of q.User's messages holding every term of
	// q.Text, newest first (fulltext.Search). Errors: fulltext.ErrEmptyQuery,
	// fulltext.ErrTooBroad (q.MaxReads spent before one result), ctx.Err().
	Search(ctx context.Context, q fulltext.Query) (fulltext.Page, error)
	// Unindex is the removal hook of recall and expiry: it takes msgs out of
	// the index, each with the conv, seq, content type and body History
	// shows (an edited message's latest body: the index holds a message
	// by its latest version; a copy per version removes every trace of
	// one whose edit was not yet indexed). The caller changes or deletes
	// the stored messages first
	// (a message not yet indexed is indexed from what is then stored); a
	// search never returns text the store no longer holds in any case, so
	// Unindex reclaims the index's space and work.
	Unindex(ctx context.Context, msgs []protocol.Message) error
	// IndexFlush waits until every message committed before the call is
	// searchable.
	IndexFlush(ctx context.Context) error
}

// MessageRef names a message.
type MessageRef struct {
	Conv string
	Seq  uint64
}

// FileRefs is the optional ability of a store to say which messages hold a
// file (the collector of server/files): both backends have it. The text
// index records them (storage/fulltext), so they follow its progress.
type FileRefs interface {
	// FileRefs returns, for each of sums, the messages recorded as holding
	// an attachment of that file: every message indexed (IndexFlush), and
	// every version an edit gave one. A message recalled, edited to
	// another file, or deleted since may still be listed: the caller
	// checks each against the store.
	FileRefs(ctx context.Context, sums [][32]byte) (map[[32]byte][]MessageRef, error)
}

// CommitHook receives messages newly stored by Append, in commit order, once
// they are durable and before the Append calls that stored them return. It
// runs on the backend's writer and must not block: the server uses it to hand
// messages to delivery in sequence order. Duplicates are not passed. msgs is
// the backend's once the hook returns (the embedded store fills it again
// with a later batch): a hook keeps copies, not the slice. The bodies are
// the messages' own and never change: a hook may keep them.
type CommitHook func(msgs []protocol.Message)

// Stage is a step of an Append's way through a backend's group commit,
// told to a StageObserver.
type Stage uint8

const (
	// StageQueue is the wait from the Append call to the start of the
	// batch that holds it: the writer busy with the batch before, or
	// gathering (the embedded store while an fsync is in flight, MySQL for
	// the rest of its interval).
	StageQueue Stage = iota
	// StageWrite is the batch's writes. Embedded: its ops run into one
	// batch, applied to the memtable and handed to the WAL. MySQL: the
	// whole transaction, its round trips and COMMIT (with its fsync), and
	// any retry.
	StageWrite
	// StageSync is, on the embedded store only, the wait from the batch's
	// apply to its completion seeing it durable: the WAL fsync (one at a
	// time: a batch applied during one waits for the next), and the batches
	// before it completed in order (their hooks and answers).
	StageSync
)

// String returns the stage's name as in the metrics' label.
func (s Stage) String() string {
	switch s {
	case StageQueue:
		return "queue"
	case StageWrite:
		return "write"
	case StageSync:
		return "sync"
	}
	return "unknown"
}

// StageObserver is told that n Appends each spent d in stage: the queue
// once per Append that reached a batch (not one whose caller had gone),
// the batch's stages once per batch written, with its number of such
// Appends (not a failed batch, nor on the embedded store a batch that
// wrote nothing: duplicates only). The stages are the main parts of an
// Append's time, not all: the commit hook and the answers in order come
// after. It runs on the backend's writer and must not block.
type StageObserver func(stage Stage, d time.Duration, n int)

// FoldName returns the key under which a username is unique: each rune
// replaced by the smallest rune of its simple case-folding orbit, so two
// names get one key exactly when strings.EqualFold says they are equal.
// Every backend stores it beside the username.
func FoldName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}
