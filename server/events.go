package server

import (
	"context"
	"errors"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Conversation events (protocol/events.go): recall, edit and reactions are
// Sends whose content type is an event's and whose ref names the target;
// replies and mentions are fields of any Send. handleSend calls
// checkEvent, which reads the target (one storage read, events and replies
// only) and refuses what the user may not do (not the sender, not the
// owner, past the recall window); the store then applies the event to the
// target's state in the batch that stores it (storage.Meta.Apply: recalled,
// edit and reaction bounds), so two events racing for one message cannot
// both pass a bound.

// Bounds of the fields of a Send.
const (
	maxMentions   = 50 // users one message mentions
	maxEmojiBytes = 32 // a reaction's body
)

// checkEvent checks the event, reply and mention fields of Send m from
// user and copies them into msg, whose Conv (a conversation of the user's)
// is set. For a recall it sets *orig to the message recalled, as the
// search index holds it (its latest version).
func (s *Server) checkEvent(ctx context.Context, user int64, m *protocol.Send, msg *protocol.Message, orig *protocol.Message) error {
	isEvent := protocol.IsEvent(m.ContentType)
	switch {
	case m.Ref != 0 && !isEvent:
		return refuse(protocol.CodeBadMessage, "ref is for events (content_type 0x0100-0x01FF)")
	case isEvent && (m.ReplyTo != 0 || len(m.Mentions) > 0 || m.MentionAll):
		return refuse(protocol.CodeBadMessage, "an event has no reply_to or mentions")
	}
	if isEvent {
		if err := s.checkTarget(ctx, user, m, msg, orig); err != nil {
			return err
		}
		msg.Ref = m.Ref
		return nil
	}
	if m.ReplyTo != 0 {
		// A reply to a message recalled since shows it recalled.
		if _, err := s.target(ctx, msg.Conv, m.ReplyTo); err != nil {
			return err
		}
		msg.ReplyTo = m.ReplyTo
	}
	if len(m.Mentions) > 0 || m.MentionAll {
		mentions, err := s.checkMentions(ctx, user, m, msg)
		if err != nil {
			return err
		}
		msg.Mentions, msg.MentionAll = mentions, m.MentionAll
	}
	return nil
}

// target reads the message at seq of conv that an event or a reply names:
// NO_SUCH_MESSAGE if there is none or it is itself an event.
func (s *Server) target(ctx context.Context, conv string, seq uint64) (protocol.Message, error) {
	ms, err := s.store.MessagesAt(ctx, conv, []uint64{seq})
	if err != nil {
		return protocol.Message{}, err
	}
	if len(ms) != 1 || ms[0].Seq != seq || protocol.IsEvent(ms[0].ContentType) {
		return protocol.Message{}, refuse(protocol.CodeNoSuchMessage, "no such message in the conversation")
	}
	return ms[0], nil
}

// unindexQueue bounds the recalled messages waiting to leave the search
// index. Past it one is left in the index: a search checks each candidate
// against the stored text, which a recall emptied, so it is never found;
// the index only keeps its postings.
const unindexQueue = 1024

// recalled hands a recalled message (its latest version, as indexed) to
// unindexRecalled; it never blocks (it runs on the store's writer).
func (s *Server) recalled(m protocol.Message) {
	if len(m.Body) == 0 {
		return
	}
	select {
	case s.unindex <- m:
	default:
	}
}

// unindexRecalled takes recalled messages out of the search index (the
// search's removal hook, storage.Searcher.Unindex) until the server stops.
func (s *Server) unindexRecalled() {
	sr, ok := s.store.(storage.Searcher)
	for {
		select {
		case <-s.quit:
			return
		case m := <-s.unindex:
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := sr.Unindex(ctx, []protocol.Message{m}); err != nil {
				s.log.Warn("recall: unindex", "conv", m.Conv, "seq", m.Seq, "err", err)
			}
			cancel()
		}
	}
}

// checkTarget checks an event against its target and the user's rights.
// For a recall it sets *orig to the target as the index holds it.
func (s *Server) checkTarget(ctx context.Context, user int64, m *protocol.Send, msg *protocol.Message, orig *protocol.Message) error {
	switch m.ContentType {
	case protocol.ContentRecall:
		if len(m.Body) != 0 {
			return refuse(protocol.CodeBadMessage, "a recall has an empty body")
		}
	case protocol.ContentEdit:
		if len(m.Body) == 0 {
			return refuse(protocol.CodeBadMessage, "an edit needs the new body")
		}
	case protocol.ContentReact, protocol.ContentUnreact:
		if !validEmoji(m.Body) {
			return refuse(protocol.CodeBadMessage, "a reaction's body is one emoji: 1-32 bytes of UTF-8, no spaces or control characters")
		}
	default:
		return refuse(protocol.CodeBadMessage, "content_type 0x0100-0x01FF is reserved for events; this one is unknown")
	}
	if m.Ref == 0 {
		return refuse(protocol.CodeBadMessage, "an event needs ref")
	}
	t, err := s.target(ctx, msg.Conv, m.Ref)
	if err != nil {
		return err
	}
	// The state of the target (recalled, edits, reactions) is the store's
	// to check, after it has looked for an earlier copy of this Send: a
	// resent recall is answered as a duplicate, not RECALLED.
	if m.ContentType == protocol.ContentRecall {
		// The index holds a message's latest version (the indexer puts an
		// edit's text under its target in place of the earlier ones'),
		// which t, folded, is.
		*orig = t
	}
	switch m.ContentType {
	case protocol.ContentRecall:
		if msg.GroupID != 0 {
			owner, err := s.groupOwner(ctx, msg.GroupID)
			if err != nil {
				return err
			}
			if owner == user {
				return nil // the group's owner recalls any message, at any time
			}
		}
		if t.From != user {
			return refuse(protocol.CodeNotSender, "only the sender (or the group's owner) may recall a message")
		}
		if time.Since(time.UnixMilli(t.ServerTime)) > s.cfg.RecallWindow {
			return refuse(protocol.CodeRecallExpired, "the message is older than the recall window")
		}
	case protocol.ContentEdit:
		if t.From != user {
			return refuse(protocol.CodeNotSender, "only the sender may edit a message")
		}
	}
	return nil
}

// groupOwner returns a group's owner.
func (s *Server) groupOwner(ctx context.Context, group int64) (int64, error) {
	g, err := s.store.Group(ctx, group)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, refuseCode(protocol.CodeNoSuchGroup)
	}
	return g.Owner, err
}

// checkMentions returns the users m mentions, ascending and distinct: each a
// member of the conversation; @all only by a group's owner.
func (s *Server) checkMentions(ctx context.Context, user int64, m *protocol.Send, msg *protocol.Message) ([]int64, error) {
	if len(m.Mentions) > maxMentions {
		return nil, refuse(protocol.CodeBadMention, "at most 50 mentions in one message")
	}
	ids := slices.Clone(m.Mentions)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if msg.GroupID == 0 {
		if m.MentionAll {
			return nil, refuse(protocol.CodeBadMention, "@all is for groups")
		}
		for _, id := range ids {
			if id != msg.To && id != user {
				return nil, refuse(protocol.CodeBadMention, "a mention of a user outside the conversation")
			}
		}
		return ids, nil
	}
	if m.MentionAll {
		owner, err := s.groupOwner(ctx, msg.GroupID)
		if err != nil {
			return nil, err
		}
		if owner != user {
			return nil, refuse(protocol.CodeBadMention, "only the group's owner may mention @all")
		}
	}
	members, err := s.members.get(ctx, msg.GroupID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := slices.BinarySearch(members, id); !ok {
			return nil, refuse(protocol.CodeBadMention, "a mention of a user who is not a member")
		}
	}
	return ids, nil
}

// validEmoji reports whether b is a reaction: 1-32 bytes of UTF-8 with no
// space, control or format-only character but the zero-width joiner and
// variation selectors of emoji sequences.
func validEmoji(b []byte) bool {
	if len(b) == 0 || len(b) > maxEmojiBytes || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r == 0x200D || (r >= 0xFE00 && r <= 0xFE0F) {
			continue
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// handleEditHistory answers every version of an edited message.
func (s *Server) handleEditHistory(c *call, q *protocol.EditHistory) (any, error) {
	if err := s.member(c.ctx, c.user, q.Conv); err != nil {
		return nil, err
	}
	vs, err := s.store.EditHistory(c.ctx, q.Conv, q.Seq)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchMessage, "no such message in the conversation")
	}
	if err != nil {
		return nil, err
	}
	return &protocol.EditHistoryResult{Conv: q.Conv, Seq: q.Seq, Versions: vs}, nil
}

// handleReactors answers every user who reacted to a message with an emoji.
func (s *Server) handleReactors(c *call, q *protocol.Reactors) (any, error) {
	if err := s.member(c.ctx, c.user, q.Conv); err != nil {
		return nil, err
	}
	t, err := s.target(c.ctx, q.Conv, q.Seq)
	if err != nil {
		return nil, err
	}
	users := []int64{}
	for _, r := range t.Reactions {
		if r.Emoji == q.Emoji {
			users = r.Users
		}
	}
	return &protocol.ReactorList{Conv: q.Conv, Seq: q.Seq, Emoji: q.Emoji, Users: users}, nil
}
