package client

import (
	"context"
	"fmt"
	"slices"

	"github.com/parleyim/parley/protocol"
)

// Conversation events: recall, edit and reactions are Sends (in call order
// with the client's other sends, idempotent by client_msg_id, errors as
// *SendError); they reach every member as messages of the conversation,
// whose Ref names the message they act on. ApplyEvent folds one into the
// message it names, for a client that keeps messages.

// Post is a message with the optional fields of replies and mentions.
type Post struct {
	ContentType uint16
	Body        []byte
	ReplyTo     uint64  // seq of the message replied to (quoted), or 0
	Mentions    []int64 // users mentioned (@user)
	MentionAll  bool    // @all: a group's owner only
}

// target returns the Send of conv without its content: To or GroupID.
func (c *Client) target(conv string) (protocol.Send, error) {
	p, ok := protocol.ParseConv(conv)
	switch {
	case ok && p.Kind == protocol.ConvGroup:
		return protocol.Send{GroupID: p.Group}, nil
	case ok && p.Has(c.UserID()):
		return protocol.Send{To: p.Peer(c.UserID())}, nil
	}
	return protocol.Send{}, fmt.Errorf("client: %q is not a conversation of user %d", conv, c.UserID())
}

// PostTo sends p to conv (a direct conversation of the user's or a group's).
func (c *Client) PostTo(ctx context.Context, conv string, p Post) (protocol.SendAck, error) {
	s, err := c.target(conv)
	if err != nil {
		return protocol.SendAck{}, err
	}
	s.ClientMsgID, s.ContentType, s.Body = c.NewClientMsgID(), p.ContentType, p.Body
	s.ReplyTo, s.Mentions, s.MentionAll = p.ReplyTo, p.Mentions, p.MentionAll
	return c.SendRaw(ctx, s)
}

// event sends an event of content type ct on the message at seq of conv.
func (c *Client) event(ctx context.Context, conv string, ct uint16, seq uint64, body []byte) (protocol.SendAck, error) {
	s, err := c.target(conv)
	if err != nil {
		return protocol.SendAck{}, err
	}
	s.ClientMsgID, s.ContentType, s.Ref, s.Body = c.NewClientMsgID(), ct, seq, body
	return c.SendRaw(ctx, s)
}

// Recall recalls the message at seq of conv for everyone: the user's own
// within the server's recall window (2 minutes by default), or any of a
// group's as its owner.
func (c *Client) Recall(ctx context.Context, conv string, seq uint64) (protocol.SendAck, error) {
	return c.event(ctx, conv, protocol.ContentRecall, seq, []byte{})
}

// Edit replaces the body of the user's message at seq of conv; the earlier
// versions stay in its EditHistory.
func (c *Client) Edit(ctx context.Context, conv string, seq uint64, body []byte) (protocol.SendAck, error) {
	return c.event(ctx, conv, protocol.ContentEdit, seq, body)
}

// React adds the user's reaction emoji to the message at seq of conv.
func (c *Client) React(ctx context.Context, conv string, seq uint64, emoji string) (protocol.SendAck, error) {
	return c.event(ctx, conv, protocol.ContentReact, seq, []byte(emoji))
}

// Unreact removes the user's reaction emoji from the message at seq of conv.
func (c *Client) Unreact(ctx context.Context, conv string, seq uint64, emoji string) (protocol.SendAck, error) {
	return c.event(ctx, conv, protocol.ContentUnreact, seq, []byte(emoji))
}

// EditHistory returns every version of the message at seq of conv, the
// original first.
func (c *Client) EditHistory(ctx context.Context, conv string, seq uint64) ([]protocol.EditVersion, error) {
	var res protocol.EditHistoryResult
	_, err := c.Do(ctx, protocol.TypeEditHistory, &protocol.EditHistory{Conv: conv, Seq: seq}, &res)
	return res.Versions, err
}

// Reactors returns every user who reacted with emoji to the message at seq
// of conv, in the order they reacted.
func (c *Client) Reactors(ctx context.Context, conv string, seq uint64, emoji string) ([]int64, error) {
	var res protocol.ReactorList
	_, err := c.Do(ctx, protocol.TypeReactors, &protocol.Reactors{Conv: conv, Seq: seq, Emoji: emoji}, &res)
	return res.Users, err
}

// Mentioned reports whether m mentions user (by name or @all): a client
// notifies such a message even in a muted conversation.
func Mentioned(m *protocol.Message, user int64) bool {
	return m.From != user && (m.MentionAll || slices.Contains(m.Mentions, user))
}

// ApplyEvent folds event ev into target, the message of its conversation
// at ev.Ref, as the server's reads do, and reports whether target changed.
// Applying an event twice, or an older edit after a newer one, changes
// nothing, so a client may apply every event it receives, from pushes and
// syncs alike, to the messages it holds. Reactions list at most
// protocol.ShownReactors users per emoji, as the server's reads do.
func ApplyEvent(target, ev *protocol.Message) bool {
	if ev.Ref != target.Seq || ev.Conv != target.Conv || !protocol.IsEvent(ev.ContentType) || target.Recalled {
		return false
	}
	switch ev.ContentType {
	case protocol.ContentRecall:
		target.Recalled, target.Body, target.Reactions = true, []byte{}, nil
		return true
	case protocol.ContentEdit:
		if ev.Edited <= target.Edited {
			return false
		}
		target.Body, target.Edited, target.EditedAt = ev.Body, ev.Edited, ev.ServerTime
		return true
	case protocol.ContentReact:
		emoji := string(ev.Body)
		i := slices.IndexFunc(target.Reactions, func(r protocol.Reaction) bool { return r.Emoji == emoji })
		if i < 0 {
			target.Reactions = append(target.Reactions, protocol.Reaction{Emoji: emoji})
			i = len(target.Reactions) - 1
		}
		r := &target.Reactions[i]
		if slices.Contains(r.Users, ev.From) {
			return false
		}
		r.Count++
		if len(r.Users) < protocol.ShownReactors {
			r.Users = append(r.Users, ev.From)
		}
		return true
	case protocol.ContentUnreact:
		emoji := string(ev.Body)
		i := slices.IndexFunc(target.Reactions, func(r protocol.Reaction) bool { return r.Emoji == emoji })
		if i < 0 {
			return false
		}
		r := &target.Reactions[i]
		j := slices.Index(r.Users, ev.From)
		if j < 0 && int(r.Count) <= len(r.Users) {
			return false // not among the users, and every user is listed
		}
		if j >= 0 {
			r.Users = slices.Delete(r.Users, j, j+1)
		}
		r.Count--
		if r.Count == 0 {
			target.Reactions = slices.Delete(target.Reactions, i, i+1)
		}
		return true
	}
	return false
}
