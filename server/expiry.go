package server

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Expiring messages (protocol/expiry.go, storage/expiry.go). A member sets a
// conversation's timer by sending a ContentTimer message (in a group, the
// owner only); checkTimer admits it. The store stamps each later message
// with its expiry and keeps a timing wheel in the database, so the timer and
// the deadlines survive a restart of any node. sweepExpired, one goroutine
// per node, deletes what is due every ExpireInterval, in bounded batches,
// takes it out of the search index and tells the online members (Expired);
// reads hide an expired message even before the sweep reaches it, and
// clients drop it on their own clock too.

// maxExpiredSeqs bounds the seqs of one Expired frame.
const maxExpiredSeqs = 1000

// checkTimer admits a Send of content type 0x0300-0x030F from user; msg's
// conversation is set.
func (s *Server) checkTimer(ctx context.Context, user int64, m *protocol.Send, msg *protocol.Message) error {
	switch {
	case m.ContentType != protocol.ContentTimer:
		return refuse(protocol.CodeBadMessage, "content_type 0x0301-0x030F is reserved")
	case m.Ref != 0 || m.ReplyTo != 0 || len(m.Mentions) > 0 || m.MentionAll:
		return refuse(protocol.CodeBadMessage, "a timer message has no ref, reply_to or mentions")
	}
	secs, ok := protocol.ParseTimer(m.Body)
	minSecs := uint32(s.cfg.MinTimer / time.Second)
	if !ok || secs != 0 && secs < minSecs {
		return refuse(protocol.CodeBadTimer, "the timer is 0 (off) or "+strconv.Itoa(int(minSecs))+
			"-"+strconv.Itoa(protocol.MaxTimer)+" seconds, in decimal digits")
	}
	if msg.GroupID != 0 {
		owner, err := s.groupOwner(ctx, msg.GroupID)
		if err != nil {
			return err
		}
		if owner != user {
			return refuse(protocol.CodeNotOwner, "only the group's owner may set its timer")
		}
	}
	if until, ok := s.timers.allow(strconv.FormatInt(user, 10), time.Now().UnixMilli()); !ok {
		return &protoError{code: protocol.CodeRateLimited, msg: "timer changed too often; retry later", until: until}
	}
	return nil
}

// sweepExpired runs the sweeper until the server stops.
func (s *Server) sweepExpired() {
	x, ok := s.store.(storage.Expirer)
	if !ok {
		return
	}
	t := time.NewTicker(s.cfg.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.expireDue(x, time.Now().UnixMilli())
		}
	}
}

// expireDue deletes up to ExpirePerTick messages due at now, in batches of
// ExpireBatch, then unindexes them and tells the members. It returns how
// many it deleted.
func (s *Server) expireDue(x storage.Expirer, now int64) int {
	var gone []protocol.Message
	for len(gone) < s.cfg.ExpirePerTick {
		batch := min(s.cfg.ExpireBatch, s.cfg.ExpirePerTick-len(gone))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msgs, err := x.Expire(ctx, now, batch)
		cancel()
		if err != nil {
			if !errors.Is(err, storage.ErrClosed) {
				s.log.Warn("expire", "err", err)
			}
			break
		}
		gone = append(gone, msgs...)
		if len(msgs) < batch {
			break
		}
	}
	if len(gone) == 0 {
		return 0
	}
	s.m.expiredN(len(gone))
	if sr, ok := s.store.(storage.Searcher); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := sr.Unindex(ctx, gone); err != nil && !errors.Is(err, storage.ErrClosed) {
			s.log.Warn("expire: unindex", "messages", len(gone), "err", err)
		}
		cancel()
	}
	s.notifyExpired(gone)
	return len(gone)
}

// notifyExpired sends each conversation's members an Expired frame with its
// expired seqs.
func (s *Server) notifyExpired(gone []protocol.Message) {
	byConv := map[string][]uint64{}
	var convs []string
	for _, m := range gone {
		if _, ok := byConv[m.Conv]; !ok {
			convs = append(convs, m.Conv)
		}
		byConv[m.Conv] = append(byConv[m.Conv], m.Seq)
	}
	for _, conv := range convs {
		p, ok := protocol.ParseConv(conv)
		if !ok {
			continue
		}
		var users []int64
		if p.Kind == protocol.ConvGroup {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			members, err := s.members.get(ctx, p.Group)
			cancel()
			if err != nil {
				continue // disbanded, or the store is down: clients drop them on their clock
			}
			users = members
		} else {
			users = []int64{p.A, p.B}
		}
		seqs := byConv[conv]
		slices.Sort(seqs)
		for len(seqs) > 0 {
			n := min(len(seqs), maxExpiredSeqs)
			s.route(users, protocol.MustFrame(protocol.TypeExpired, 0, &protocol.Expired{Conv: conv, Seqs: seqs[:n]}), nil)
			seqs = seqs[n:]
		}
	}
}
