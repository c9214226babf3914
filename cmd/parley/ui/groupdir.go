package ui

import (
	"context"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// The directory of open groups on the screen: /list [TEXT] and /join
// NAME|#ID. Group names are not unique: /join NAME joins the one open
// group of that name, and with several says which ids to choose from.

// listPage is how many groups /list shows: one page of the server's.
const listPage = 50

// myGroups is the ids of the groups this user is in, as last refreshed.
func (m *Model) myGroups() map[int64]bool {
	in := make(map[int64]bool, len(m.groups))
	for id := range m.groups {
		in[id] = true
	}
	return in
}

// listOpenGroups is the panel of /list: the first page of open groups
// whose name starts with prefix.
func listOpenGroups(ctx context.Context, s Social, prefix string, me int64, in map[int64]bool) ([]string, error) {
	page, err := s.SearchGroups(ctx, prefix, "", 0, listPage)
	title := "open groups"
	if prefix != "" {
		title += fmt.Sprintf(" starting with %q", prefix)
	}
	out := []string{title, ""}
	for _, g := range page.Groups {
		line := fmt.Sprintf("  #%s — id %d, %s", g.Name, g.GroupID, members(g.Members))
		switch {
		case g.Owner == me:
			line += ", yours"
		case in[g.GroupID]:
			line += ", you are in it"
		}
		out = append(out, line)
	}
	switch {
	case len(page.Groups) == 0 && prefix == "":
		out = append(out, "  none yet: /group open NAME makes one")
	case len(page.Groups) == 0:
		out = append(out, "  none: /list shows them all")
	default:
		out = append(out, "", "/join NAME joins one (/join #ID when names repeat)")
	}
	if page.NextID != 0 {
		out = append(out, fmt.Sprintf("more than %d: /list TEXT shows those starting with TEXT", len(page.Groups)))
	}
	return out, err
}

// join runs /join: by id, or by name among the open groups; a group this
// user is in already is opened.
func (m *Model) join(c Command) tea.Cmd {
	b, name, id := m.b, c.Rest, c.Num
	for gid, g := range m.groups {
		if gid == id || (id == 0 && strings.EqualFold(g.Name, name)) {
			m.say("you are in #" + g.Name + " already")
			return m.open(protocol.GroupConv(gid))
		}
	}
	return m.call(func(ctx context.Context) tea.Msg {
		if id == 0 {
			gs, err := b.OpenGroupsNamed(ctx, name)
			switch {
			case err != nil:
				return doneMsg{err: err}
			case len(gs) == 0:
				return doneMsg{err: fmt.Errorf("no open group is named %q: /list shows them", name)}
			case len(gs) > 1:
				ids := make([]string, len(gs))
				for i, g := range gs {
					ids[i] = fmt.Sprintf("#%d (%s)", g.GroupID, members(g.Members))
				}
				return doneMsg{err: fmt.Errorf("%d open groups are named %q: /join one of %s", len(gs), name, strings.Join(ids, ", "))}
			}
			id = gs[0].GroupID
		}
		g, err := b.JoinGroup(ctx, id)
		if err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{text: "you joined #" + g.Name, refresh: true, open: protocol.GroupConv(g.GroupID)}
	})
}
