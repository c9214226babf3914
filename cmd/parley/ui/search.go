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
// numbered; /more (or PgDn at the end of the list) asks for the next page
// of the same search and adds it below, numbered on; /goto N opens the conversation of match N (of any
// page shown) and scrolls to it, loading older pages until it is there,
// marked by a "found" line.

// foundText marks the message /goto brought into view.
const foundText = "──────── found ────────"

// Paging of search results: searchPage results a page; at most maxFound
// kept (past that, /more asks the user to narrow the search).
const (
	searchPage = 20
	maxFound   = 500
)

// searching is the search whose results the panel shows: its query, the
// cursor of its next page, and whether a page is on its way.
type searching struct {
	gen     int // which /search; an answer of an earlier one is dropped
	query   string
	lines   []string        // the panel of its matches
	next    protocol.Search // the next page's query, cursor set
	more    bool
	loading bool
}

// searchMsg is the server's answer to /search or /more.
type searchMsg struct {
	gen  int
	more bool // an answer to /more
	res  protocol.SearchResult
	err  error
}

func (m *Model) search(query string) tea.Cmd {
	m.srch.gen++
	m.srch = searching{gen: m.srch.gen, query: query, loading: true}
	m.found = nil
	m.say("searching for " + query + "…")
	return m.searchPage(protocol.Search{Query: query, Limit: searchPage}, false)
}

// more asks for the next page of the last search.
func (m *Model) more() tea.Cmd {
	switch {
	case m.srch.query == "":
		m.fail("no search to page on: /search TEXT first")
		return nil
	case m.srch.loading:
		m.say("the next page is on its way…")
		return nil
	case !m.srch.more:
		m.say(fmt.Sprintf("no more matches for %q", m.srch.query))
		return nil
	case len(m.found) >= maxFound:
		m.fail(fmt.Sprintf("%d matches shown: add words to narrow the search", len(m.found)))
		return nil
	}
	m.srch.loading = true
	m.say("searching for older matches…")
	return m.searchPage(m.srch.next, true)
}

func (m *Model) searchPage(q protocol.Search, more bool) tea.Cmd {
	b, gen := m.b, m.srch.gen
	return m.call(func(ctx context.Context) tea.Msg {
		res, err := b.Search(ctx, q)
		return searchMsg{gen: gen, more: more, res: res, err: err}
	})
}

func (m *Model) searched(s searchMsg) {
	if s.gen != m.srch.gen {
		return // an answer to a search replaced since
	}
	m.srch.loading = false
	if s.err != nil {
		m.fail(Plain(s.err))
		return
	}
	m.say("")
	first := len(m.found)
	m.found = append(m.found, s.res.Messages...)
	m.srch.more = s.res.HasMore && len(s.res.Messages) > 0
	m.srch.next = protocol.Search{Query: m.srch.query, Limit: searchPage,
		BeforeTime: s.res.NextTime, BeforeConv: s.res.NextConv, BeforeSeq: s.res.NextSeq}
	out := []string{fmt.Sprintf("messages with %q, newest first", m.srch.query), ""}
	top := 0
	for i, x := range m.found {
		where := x.Conv
		if c := m.conv(x.Conv); c != nil {
			where = m.title(c)
		}
		if i == first && s.more {
			top = len(out) // the new page at the top of the panel
		}
		t := time.UnixMilli(x.ServerTime).Format("2 Jan 15:04")
		out = append(out, fmt.Sprintf("  %2d. %s %s, %s: %s", i+1, t, where, m.nameOf(x.From), clip(MessageText(x), 60)))
	}
	switch {
	case len(m.found) == 0:
		out = append(out, "  none")
	default:
		out = append(out, "", "  /goto N opens message N in its conversation")
		switch {
		case m.srch.more && len(m.found) < maxFound:
			out = append(out, "  /more (or PgDn here) shows older matches")
		case m.srch.more:
			out = append(out, "  older matches exist: add words to narrow the search")
		case s.more:
			out = append(out, "  no older matches")
		}
	}
	if s.more && len(s.res.Messages) == 0 {
		m.say(fmt.Sprintf("no more matches for %q", m.srch.query))
		top = max(len(out)-m.chatRows()+1, 0)
	}
	m.panel, m.panelTop, m.srch.lines = out, top, out
}

// searchPanel reports whether the panel shows the matches of the last
// search.
func (m *Model) searchPanel() bool {
	return len(m.panel) > 0 && len(m.srch.lines) > 0 && &m.panel[0] == &m.srch.lines[0]
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
