package ui

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// resumed is alice's screen started offline from the cache in dir, as
// parley starts with a saved session.
func resumed(t *testing.T, f *fake, dir string) *Model {
	t.Helper()
	m := New(f, Config{Addr: "127.0.0.1:7070", Username: "alice", Resumed: true, UserID: 1, Dir: dir})
	drive(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	return m
}

// After a start from the cache, the messages missed meanwhile come below
// an unread divider, whether the catch-up Sync or the conversation list
// answers first.
func TestDividerAfterCatchUp(t *testing.T) {
	for _, syncFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("syncFirst=", syncFirst), func(t *testing.T) {
			dir := t.TempDir()
			bobConv := protocol.DirectConv(1, 2)
			f := newFake()
			f.history[bobConv] = f.history[bobConv][:1]
			f.history[bobConv] = append(f.history[bobConv], msg(bobConv, 2, 2, "read 2"), msg(bobConv, 3, 2, "read 3"))
			SaveCache(AccountFile(dir, "cache", "127.0.0.1:7070", 1), Cache{
				Names: map[int64]string{1: "alice", 2: "bob"}, Current: bobConv,
				Convs: []CachedConv{{ID: bobConv, Msgs: f.history[bobConv], Read: 3, LastTime: t0}},
			})
			var missed []protocol.Message
			for seq := uint64(4); seq <= 30; seq++ {
				x := msg(bobConv, seq, 2, fmt.Sprintf("unread %d", seq))
				f.history[bobConv] = append(f.history[bobConv], x)
				missed = append(missed, x)
			}
			f.convs[0] = protocol.Conversation{Conv: bobConv, LastSeq: 30, AckSeq: 3, Unread: 27, Last: &missed[len(missed)-1]}
			m := resumed(t, f, dir)
			run(m, m.Init())
			if v := screenText(m); !strings.Contains(v, "bob: read 3") {
				t.Fatalf("offline start:\n%s", v)
			}
			login := EventMsg{E: client.Event{Type: client.EventLoggedIn, UserID: 1}}
			if syncFirst {
				for _, x := range missed {
					drive(m, IncomingMsg{M: x})
				}
				drive(m, login)
			} else {
				drive(m, login)
				for _, x := range missed {
					drive(m, IncomingMsg{M: x})
				}
			}
			v := screenText(m)
			lines := strings.Split(v, "\n")
			if !strings.Contains(lines[2], dividerText) || !strings.Contains(lines[3], "bob: unread 4") {
				t.Fatalf("no divider:\n%s", v)
			}
		})
	}
}

// A history page that brings messages newer than those shown does not
// move the view of a reader scrolled up.
func TestHistoryPageKeepsTheView(t *testing.T) {
	f := newFake()
	bobConv := protocol.DirectConv(1, 2)
	for seq := uint64(3); seq <= 60; seq++ {
		f.history[bobConv] = append(f.history[bobConv], msg(bobConv, seq, 2, fmt.Sprintf("bob says %d", seq)))
	}
	f.convs[0] = protocol.Conversation{Conv: bobConv, LastSeq: 60, AckSeq: 60, Last: &f.history[bobConv][59]}
	m := loggedIn(t, f)
	c := m.conv(bobConv)
	press(m, tea.KeyPgUp)
	body := func() string { // the chat area's messages, without its title
		var b strings.Builder
		for _, l := range strings.Split(screenText(m), "\n")[1:22] {
			_, right, _ := strings.Cut(l, "│")
			b.WriteString(right + "\n")
		}
		return b.String()
	}
	before := body()
	// The screen is told of 61 and 62 only by a later page.
	f.history[bobConv] = append(f.history[bobConv], msg(bobConv, 61, 2, "bob says 61"), msg(bobConv, 62, 2, "bob says 62"))
	c.loaded, c.more, c.next = false, true, 0
	run(m, m.loadHistory(c))
	if after := body(); after != before {
		t.Fatalf("the view moved:\n%s\nthen\n%s", before, after)
	}
}
