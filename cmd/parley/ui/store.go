package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Queued is one message of the outgoing queue: typed, not yet stored by
// the server. Its ClientMsgID stays the same however often it is sent, so
// the server stores it once.
type Queued struct {
	Conv        string  `json:"conv"`
	ClientMsgID string  `json:"client_msg_id"`
	To          int64   `json:"to,omitempty"`
	GroupID     int64   `json:"group_id,omitempty"`
	Body        string  `json:"body"`
	At          int64   `json:"at"`               // Unix ms, when Enter was pressed
	Failed      string  `json:"failed,omitempty"` // refused, in words; it waits for /retry or /discard
	ReplyTo     uint64  `json:"reply_to,omitempty"`
	Mentions    []int64 `json:"mentions,omitempty"`
	MentionAll  bool    `json:"mention_all,omitempty"`
}

func (q Queued) send() protocol.Send {
	return protocol.Send{ClientMsgID: q.ClientMsgID, To: q.To, GroupID: q.GroupID, Body: []byte(q.Body),
		ReplyTo: q.ReplyTo, Mentions: q.Mentions, MentionAll: q.MentionAll}
}

// Outbox is an account's queue of outgoing messages in a file (mode
// 0600), first in first out. Every change is written to a new file,
// synced and renamed over the old one before the call returns, so a quit
// or a crash loses nothing that was queued. A nil *Outbox keeps the queue
// in memory only.
//
// One process at a time holds an outbox: OpenOutbox takes an exclusive
// lock (flock) on a file beside it, which Close or the end of the
// process releases, so two copies of parley on one account never
// overwrite each other's queue or send it twice.
type Outbox struct {
	path  string
	lock  *os.File
	items []Queued
}

// ErrOutboxLocked is returned (within a *LockedError) by OpenOutbox when
// another process holds the outbox.
var ErrOutboxLocked = errors.New("ui: the outgoing queue is held by another parley")

// LockedError says which process holds an outbox.
type LockedError struct {
	Path string // the lock file
	PID  int    // the holder's process id as it wrote it; 0 if unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another parley (pid %d) is running for this account", e.PID)
	}
	return "another parley is running for this account"
}

func (e *LockedError) Unwrap() error { return ErrOutboxLocked }

// OpenOutbox locks the queue at path and reads it; a missing file is an
// empty queue. A *LockedError (ErrOutboxLocked) if another process holds
// it.
func OpenOutbox(path string) (*Outbox, error) {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	o := &Outbox{path: path, lock: lock}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return o, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &o.items)
		if err != nil {
			err = fmt.Errorf("%s is not a parley outbox: %v", path, err)
		}
	}
	if err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// lockFile opens (or makes, mode 0600) the file at path and takes an
// exclusive flock on it without waiting; the holder's pid is written in
// it for the message of the one that finds it held.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			le := &LockedError{Path: path}
			if b, err := os.ReadFile(path); err == nil {
				le.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			return nil, le
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Close releases the outbox's lock; the queue stays on disk. The Outbox
// must not be used after.
func (o *Outbox) Close() error {
	if o == nil || o.lock == nil {
		return nil
	}
	err := o.lock.Close() // closing the descriptor releases the flock
	o.lock = nil
	return err
}

// Items is the queue, oldest first.
func (o *Outbox) Items() []Queued {
	if o == nil {
		return nil
	}
	return slices.Clone(o.items)
}

// Put adds q at the tail, or replaces the item with its ClientMsgID.
func (o *Outbox) Put(q Queued) error {
	if o == nil {
		return nil
	}
	if i := o.index(q.ClientMsgID); i >= 0 {
		o.items[i] = q
	} else {
		o.items = append(o.items, q)
	}
	return o.save()
}

// Remove takes the item with this ClientMsgID out.
func (o *Outbox) Remove(clientMsgID string) error {
	if o == nil {
		return nil
	}
	i := o.index(clientMsgID)
	if i < 0 {
		return nil
	}
	o.items = slices.Delete(o.items, i, i+1)
	return o.save()
}

func (o *Outbox) index(id string) int {
	return slices.IndexFunc(o.items, func(q Queued) bool { return q.ClientMsgID == id })
}

func (o *Outbox) save() error {
	if len(o.items) == 0 {
		err := os.Remove(o.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	b, err := json.MarshalIndent(o.items, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(o.path, b)
}

// WriteFileAtomic writes b to path, readable by its owner only (in a 0700
// directory if it has to make one), through a synced temporary file
// renamed over the old one.
func WriteFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// AccountFile is the path of an account's file of kind ("outbox",
// "cache") in dir: one per server address and user.
func AccountFile(dir, kind, addr string, user int64) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, addr)
	return filepath.Join(dir, fmt.Sprintf("%s-%d@%s.json", kind, user, safe))
}

// Cache is what the screen shows before the server answers: the
// conversations, names, groups and friends of the last session, and the
// newest messages of each conversation.
type Cache struct {
	Names   map[int64]string     `json:"names"`
	Groups  []protocol.GroupInfo `json:"groups,omitempty"`
	Friends []protocol.UserInfo  `json:"friends,omitempty"`
	Convs   []CachedConv         `json:"convs,omitempty"`
	Current string               `json:"current,omitempty"`
	// MaxMessage is the server's message limit told at the last login.
	MaxMessage int `json:"max_message,omitempty"`
}

// CachedConv is one conversation of the cache.
type CachedConv struct {
	ID          string             `json:"id"`
	Msgs        []protocol.Message `json:"msgs,omitempty"`
	LastText    string             `json:"last_text,omitempty"`
	LastExpires int64              `json:"last_expires,omitempty"` // when the message of LastText expires
	LastFrom    int64              `json:"last_from,omitempty"`
	LastTime    int64              `json:"last_time,omitempty"`
	Unread      int                `json:"unread,omitempty"`
	Read        uint64             `json:"read,omitempty"`
}

// cachedMsgs is how many of the newest messages of a conversation the
// cache keeps.
const cachedMsgs = 50

// LoadCache reads a cache; a missing or unreadable one is empty (it is
// only a cache).
func LoadCache(path string) Cache {
	var c Cache
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

// SaveCache writes c to path (mode 0600).
func SaveCache(path string, c Cache) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// loadCache shows what the last session saw, until the server answers.
func (m *Model) loadCache(c Cache) {
	for id, n := range c.Names {
		if _, ok := m.names[id]; !ok {
			m.names[id] = n
		}
	}
	for _, g := range c.Groups {
		m.groups[g.GroupID] = g
	}
	m.friends = c.Friends
	if m.serverMax == 0 {
		m.serverMax = c.MaxMessage
	}
	for _, cc := range c.Convs {
		x := m.ensure(cc.ID)
		added := 0
		for _, msg := range cc.Msgs {
			if m.add(x, msg) {
				added++
			}
		}
		x.lastText, x.lastFrom, x.lastExpires = cc.LastText, cc.LastFrom, cc.LastExpires
		if added < len(cc.Msgs) || cc.LastExpires != 0 && cc.LastExpires <= time.Now().UnixMilli() {
			// Expired since: what the list shows is the newest left.
			m.lastAgain(x)
		}
		x.lastTime = max(x.lastTime, cc.LastTime)
		x.srvUnread, x.read = cc.Unread, cc.Read
		if n := len(x.msgs); n > 0 {
			x.base = x.msgs[n-1].Seq
		}
	}
	m.sortConvs()
	if m.current == "" {
		if c.Current != "" && m.conv(c.Current) != nil {
			m.current = c.Current
		} else if len(m.convs) > 0 {
			m.current = m.convs[0].id
		}
	}
}

// saveCache keeps what the screen shows for the next start.
func (m *Model) saveCache() {
	if m.cachePath == "" {
		return
	}
	c := Cache{Names: m.names, Friends: m.friends, Current: m.current, MaxMessage: m.serverMax}
	for _, g := range m.groups {
		c.Groups = append(c.Groups, g)
	}
	for _, x := range m.convs {
		cc := CachedConv{ID: x.id, LastText: x.lastText, LastFrom: x.lastFrom, LastTime: x.lastTime, Unread: x.unread(), Read: x.read,
			LastExpires: x.lastExpires}
		now := time.Now()
		cc.Msgs = slices.DeleteFunc(slices.Clone(x.msgs[max(len(x.msgs)-cachedMsgs, 0):]), func(y protocol.Message) bool { return client.Expired(&y, now) })
		c.Convs = append(c.Convs, cc)
	}
	_ = SaveCache(m.cachePath, c)
}
