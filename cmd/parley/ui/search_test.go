package ui

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// /search lists the matches; /goto opens one far back in its conversation,
// loading older pages until it is there, and shows it marked.
func TestSearchAndGoto(t *testing.T) {
	f := newFake()
	f.longHistory(120, func(seq uint64) string {
		if seq == 7 {
			return "the 東京 harbour plan"
		}
		return fmt.Sprintf("message %d", seq)
	})
	bobConv := protocol.DirectConv(1, 2)
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

// /more adds the next page of the last search below the first, numbered
// on, until there is none; /goto reaches a match of any page shown; a new
// /search starts over, and a late page of the one it replaced is dropped.
func TestSearchMore(t *testing.T) {
	f := newFake()
	f.longHistory(50, func(seq uint64) string { return fmt.Sprintf("plan number %d", seq) })
	bobConv := protocol.DirectConv(1, 2)
	m := loggedIn(t, f)
	enter(m, "/more")
	if !m.bad || !strings.Contains(m.notice, "/search TEXT first") {
		t.Errorf("/more before a search: notice %q", m.notice)
	}
	enter(m, "/search plan")
	if len(m.found) != searchPage || !strings.Contains(strings.Join(m.panel, "\n"), "/more (or PgDn here) shows older matches") {
		t.Fatalf("first page: %d results\n%s", len(m.found), strings.Join(m.panel, "\n"))
	}
	// PgDn pages through the panel, then at its end asks for the next page.
	for range 10 {
		if len(m.found) > searchPage {
			break
		}
		press(m, tea.KeyPgDown)
	}
	v := screenText(m)
	if len(m.found) != 2*searchPage || !strings.Contains(v, "21.") || !strings.Contains(v, "plan number 30") {
		t.Fatalf("after /more: %d results\n%s", len(m.found), v)
	}
	if q := f.searches[len(f.searches)-1]; q.Query != "plan" || q.BeforeSeq != 31 || q.BeforeConv != bobConv {
		t.Errorf("/more asked %+v, want the cursor after seq 31", q)
	}
	enter(m, "/more")
	panel := strings.Join(m.panel, "\n")
	if len(m.found) != 50 || !strings.Contains(panel, "50. ") || !strings.Contains(panel, "no older matches") {
		t.Fatalf("after the last page: %d results\n%s", len(m.found), panel)
	}
	n := len(f.searches)
	enter(m, "/more")
	if len(f.searches) != n || !strings.Contains(m.notice, "no more matches") {
		t.Errorf("/more past the end: %d searches sent (want %d), notice %q", len(f.searches), n, m.notice)
	}
	for i, x := range m.found {
		if want := uint64(50 - i); x.Seq != want {
			t.Fatalf("result %d is seq %d, want %d (pages in order, none twice)", i+1, x.Seq, want)
		}
	}
	enter(m, "/goto 45")
	if c := m.conv(bobConv); m.current != bobConv || c.found != 6 || !strings.Contains(chatText(m), "plan number 6") {
		t.Fatalf("/goto 45: current %s, found %d\n%s", m.current, c.found, chatText(m))
	}
	// A page of a replaced search is dropped.
	enter(m, "/search number 4")
	stale := searchMsg{gen: m.srch.gen - 1, more: true, res: protocol.SearchResult{Messages: []protocol.Message{msg(bobConv, 99, 2, "stale")}}}
	m.Update(stale)
	if len(m.found) != 11 || m.srch.more { // seq 4 and 40-49
		t.Errorf("/search number 4: %d results, more %v; want 11, no more", len(m.found), m.srch.more)
	}
	for _, x := range m.found {
		if x.Seq == 99 {
			t.Fatalf("a page of the replaced search was added")
		}
	}
}
