package server

import (
	"fmt"
	"testing"

	"github.com/parleyim/parley/protocol"
)

// A page of messages heavy with mentions and reactions is cut to fit the
// reply bound, as plain ones are.
func TestFitReplyCountsEventFields(t *testing.T) {
	var users []int64
	for i := range protocol.ShownReactors {
		users = append(users, 1<<40+int64(i))
	}
	var mentions []int64
	for i := range maxMentions {
		mentions = append(mentions, 1<<40+int64(i))
	}
	msgs := make([]protocol.Message, 500)
	for i := range msgs {
		m := &msgs[i]
		m.MsgID, m.Conv, m.Seq, m.From, m.GroupID = 1<<62, "g:123456789", uint64(1<<40+i), 1<<40, 123456789
		m.ClientMsgID, m.Body, m.ServerTime = "0123456789abcdef0123456789abcdef", make([]byte, 512), 1<<41
		m.Mentions, m.ReplyTo, m.Edited, m.EditedAt = mentions, 1<<40, 20, 1<<41
		for e := range 20 {
			m.Reactions = append(m.Reactions, protocol.Reaction{Emoji: fmt.Sprintf("👍🏽%02d", e), Count: 2000, Users: users})
		}
	}
	kept := fitReply(msgs)
	if kept >= len(msgs) || kept < 1 {
		t.Fatalf("kept %d of %d", kept, len(msgs))
	}
	frame := protocol.MustFrame(protocol.TypeHistoryResult, 1, &protocol.HistoryResult{Conv: "g:123456789", Messages: msgs[:kept], Next: 1, HasMore: true})
	if len(frame) > maxReply {
		t.Fatalf("a reply of %d messages is %d bytes, above %d", kept, len(frame), maxReply)
	}
	t.Logf("%d messages, %d bytes", kept, len(frame))
}
