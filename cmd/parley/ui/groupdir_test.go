package ui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// /list shows the open groups (by a prefix too); /join NAME joins the one
// group of that name, asks for an id when names repeat, opens a group the
// user is in already; the owner of the group shown opens and closes it.
func TestOpenGroupsOnScreen(t *testing.T) {
	f := newFake()
	f.open = []protocol.GroupInfo{
		{GroupID: 10, Name: "Crag", Owner: 2, Open: true, Members: 3},
		{GroupID: 11, Name: "crag", Owner: 3, Open: true, Members: 1},
		{GroupID: 12, Name: "Lobby", Owner: 4, Open: true, Members: 40},
	}
	m := loggedIn(t, f)

	enter(m, "/list")
	v := screenText(m)
	for _, want := range []string{"open groups", "#Crag — id 10, 3 members", "#crag — id 11, 1 member", "#Lobby — id 12, 40 members", "/join NAME"} {
		if !strings.Contains(v, want) {
			t.Fatalf("/list lacks %q:\n%s", want, v)
		}
	}
	press(m, tea.KeyEsc)
	enter(m, "/list CR")
	if v := screenText(m); !strings.Contains(v, `open groups starting with "CR"`) || strings.Contains(v, "Lobby") || !strings.Contains(v, "#Crag") {
		t.Fatalf("/list CR:\n%s", v)
	}
	enter(m, "/list zzz")
	if v := screenText(m); !strings.Contains(v, "none: /list shows them all") {
		t.Fatalf("/list zzz:\n%s", v)
	}

	enter(m, "/join crag")
	if len(f.joined) != 0 || !m.bad || !strings.Contains(m.notice, `2 open groups are named "crag": /join one of #10 (3 members), #11 (1 member)`) {
		t.Fatalf("ambiguous join: %v %q", f.joined, m.notice)
	}
	enter(m, "/join #11")
	if len(f.joined) != 1 || f.joined[0] != 11 || m.current != protocol.GroupConv(11) || m.notice != "you joined #crag" {
		t.Fatalf("join #11: %v %s %q", f.joined, m.current, m.notice)
	}
	enter(m, "/join lobby")
	if len(f.joined) != 2 || f.joined[1] != 12 || m.current != protocol.GroupConv(12) {
		t.Fatalf("join lobby: %v %s %q", f.joined, m.current, m.notice)
	}
	enter(m, "/join #11")
	if len(f.joined) != 2 || m.current != protocol.GroupConv(11) || m.notice != "you are in #crag already" {
		t.Fatalf("join again: %v %s %q", f.joined, m.current, m.notice)
	}

	// Not the owner of #crag: refused here, no request.
	enter(m, "/open")
	if len(f.setOpen) != 0 || !strings.Contains(m.notice, "only the owner of #crag") {
		t.Fatalf("/open by a member: %v %q", f.setOpen, m.notice)
	}
	enter(m, "/group new mine")
	enter(m, "/open")
	enter(m, "/close")
	if len(f.setOpen) != 2 || f.setOpen[0] != (protocol.GroupSetOpen{GroupID: 7, Open: true}) || f.setOpen[1] != (protocol.GroupSetOpen{GroupID: 7}) ||
		!strings.Contains(m.notice, "#mine is invite-only") {
		t.Fatalf("/open, /close: %v %q", f.setOpen, m.notice)
	}
	drive(m, NoticeMsg{N: client.Notice{Group: &protocol.GroupEvent{GroupID: 11, Kind: protocol.GroupOpened, Actor: 2}}})
	if m.notice != "bob opened #crag: anyone may find it and join" {
		t.Fatalf("opened event: %q", m.notice)
	}
}
