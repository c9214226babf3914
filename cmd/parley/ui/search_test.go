package ui

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parleyim/parley/protocol"
)

// /search lists the matches; /goto opens one far back in its conversation,
// loading older pages until it is there, and shows it marked.
func TestSearchAndGoto(t *testing.T) {
	f := newFake()
	bobConv := protocol.DirectConv(1, 2)
	f.history[bobConv] = nil
	for seq := uint64(1); seq <= 120; seq++ {
		body := fmt.Sprintf("message %d", seq)
		if seq == 7 {
			body = "the 東京 harbour plan"
		}
		f.history[bobConv] = append(f.history[bobConv], msg(bobConv, seq, 2-int64(seq%2), body))
	}
	f.convs[0].LastSeq, f.convs[0].Unread = 120, 0
	m := loggedIn(t, f)
	enter(m, "/search 東京")
	if v := screenText(m); !strings.Contains(v, `messages with "東京"`) || !strings.Contains(v, "1.") || !strings.Contains(v, "the 東京 harbour plan") {
		t.Fatalf("search panel:\n%s", v)
	}
	enter(m, "/goto 1")
	c := m.conv(bobConv)
	v := chatText(m)
	if m.current != bobConv || m.panel != nil || !strings.Contains(v, foundText) || !strings.Contains(v, "the 東京 harbour plan") {
		t.Fatalf("after /goto 1: current %s, %d messages loaded\n%s", m.current, len(c.msgs), v)
	}
	if strings.Contains(v, "message 120") {
		t.Errorf("the view stayed at the newest message:\n%s", v)
	}
	enter(m, "/goto 2")
	if !m.bad || !strings.Contains(m.notice, "no search result 2") {
		t.Errorf("/goto 2 of 1 result: notice %q", m.notice)
	}
}
