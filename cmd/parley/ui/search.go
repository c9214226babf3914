package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// Search on the screen: /search TEXT lists the newest matches in the panel,
// numbered; /goto N opens the conversation of match N and scrolls to it,
// loading older pages until it is there, marked by a "found" line.

// foundText marks the message /goto brought into view.
const foundText = "──────── found ────────"

// searchMsg is the server's answer to /search.
type searchMsg struct {
	query string
	res   protocol.SearchResult
	err   error
}

func (m *Model) search(query string) tea.Cmd {
	b := m.b
	m.say("searching for " + query + "…")
	return m.call(func(ctx context.Context) tea.Msg {
		res, err := b.Search(ctx, protocol.Search{Query: query, Limit: 20})
		return searchMsg{query: query, res: res, err: err}
	})
}

func (m *Model) searched(s searchMsg) {
	if s.err != nil {
		m.fail(Plain(s.err))
		return
	}
	m.say("")
	m.found = s.res.Messages
	out := []string{fmt.Sprintf("messages with %q, newest first", s.query), ""}
	for i, x := range s.res.Messages {
		where := x.Conv
		if c := m.conv(x.Conv); c != nil {
			where = m.title(c)
		}
		t := time.UnixMilli(x.ServerTime).Format("2 Jan 15:04")
		out = append(out, fmt.Sprintf("  %2d. %s %s, %s: %s", i+1, t, where, m.nameOf(x.From), clip(MessageText(x), 60)))
	}
	switch {
	case len(s.res.Messages) == 0:
		out = append(out, "  none")
	default:
		out = append(out, "", "  /goto N opens message N in its conversation")
		if s.res.HasMore {
			out = append(out, "  older matches exist: add words to narrow the search")
		}
	}
	m.panel, m.panelTop = out, 0
}

// gotoFound opens the conversation of search result n (from 1).
func (m *Model) gotoFound(n int64) tea.Cmd {
	if n < 1 || int(n) > len(m.found) {
		m.fail(fmt.Sprintf("no search result %d: /search TEXT first", n))
		return nil
	}
	x := m.found[n-1]
	c := m.ensure(x.Conv)
	cmd := m.open(x.Conv)
	c.found, c.seek = x.Seq, true
	return tea.Batch(cmd, m.seekFound(c))
}

// seekFound scrolls the conversation shown to its found message once it is
// loaded, asking for older pages until it is.
func (m *Model) seekFound(c *conv) tea.Cmd {
	if !c.seek || c.id != m.current {
		return nil
	}
	if !slices.ContainsFunc(c.msgs, func(x protocol.Message) bool { return x.Seq == c.found }) {
		switch {
		case c.loading:
			return nil
		case !c.loaded || c.more:
			return m.loadHistory(c)
		}
		c.seek = false
		m.fail("that message is no longer there")
		return nil
	}
	lines := m.chatLines(c)
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, foundText) })
	if i < 0 {
		return nil
	}
	m.scroll = max(len(lines)-i-(m.chatRows()-1), 0)
	m.clampScroll()
	c.seek = false
	return nil
}
