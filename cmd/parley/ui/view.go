package ui

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/rivo/uniseg"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// styles are the screen's colours. On a terminal without colours (and in
// tests) lipgloss renders them as plain text.
type styles struct {
	title, dim, me, other, badge, sel, head lipgloss.Style
	good, warn, bad, box                    lipgloss.Style
}

func newStyles() styles {
	return styles{
		title: lipgloss.NewStyle().Bold(true),
		dim:   lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "244", Dark: "243"}),
		me:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "25", Dark: "39"}),
		other: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "130", Dark: "214"}),
		badge: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(lipgloss.Color("161")),
		sel:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "25", Dark: "39"}),
		head:  lipgloss.NewStyle().Bold(true).Underline(true),
		good:  lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "28", Dark: "42"}),
		warn:  lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "130", Dark: "220"}),
		bad:   lipgloss.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "160", Dark: "203"}),
		box:   lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(1, 3),
	}
}

// View implements tea.Model.
func (m *Model) View() string {
	if m.quitting {
		return ""
	}
	if m.screen == screenLogin {
		return m.loginView()
	}
	sw := m.sideWidth()
	cw := m.chatWidth()
	rows := m.height - 2 - m.composed()
	side := m.sideLines(sw, rows)
	chat := m.chatView(cw, rows)
	sep := m.st.dim.Render("│")
	var b strings.Builder
	for i := range rows {
		b.WriteString(fit(at(side, i), sw) + sep + fit(at(chat, i), cw) + "\n")
	}
	b.WriteString(fit(m.statusLine(), m.usable()) + "\n")
	for _, l := range m.multi[len(m.multi)-m.composed():] {
		b.WriteString(fit(m.st.dim.Render("  "+oneLine(Clean(l))), m.usable()) + "\n")
	}
	b.WriteString(fit(m.input.View(), m.usable()))
	return b.String()
}

// usable is the width the screen draws on: the last column stays empty,
// a margin for terminals that wrap a line that reaches it.
func (m *Model) usable() int { return max(m.width-1, 1) }

// chatWidth is the width of the chat area, right of the list.
func (m *Model) chatWidth() int { return max(m.usable()-m.sideWidth()-1, 1) }

func (m *Model) loginView() string {
	field := func(label string, t string, focused bool) string {
		l := m.st.dim.Render(label)
		if focused {
			l = m.st.sel.Render(label)
		}
		return l + " " + t
	}
	box := m.st.box.Render(strings.Join([]string{
		m.st.title.Render("parley") + m.st.dim.Render(" · "+m.addr),
		"",
		field("username", m.user.View(), m.user.Focused()),
		field("password", m.pass.View(), m.pass.Focused()),
		"",
		m.st.dim.Render("Enter  log in"),
		m.st.dim.Render("Ctrl+R register a new account"),
		m.st.dim.Render("Tab    next field · Ctrl+C quit"),
	}, "\n"))
	notice := oneLine(Clean(m.notice))
	if m.bad {
		notice = m.st.bad.Render(notice)
	}
	return lipgloss.Place(m.width, m.height, lipgloss.Center, lipgloss.Center, box+"\n\n"+notice)
}

func (m *Model) sideWidth() int { return min(max(m.width/4, 18), 32) }

// chatRows is how many message lines the chat area shows.
func (m *Model) chatRows() int { return max(m.height-3-m.composed(), 1) }

// composed is how many lines written with Alt+Enter show over the input.
func (m *Model) composed() int { return min(len(m.multi), 5) }

func (m *Model) sideLines(w, rows int) []string {
	out := []string{m.st.head.Render("Conversations")}
	sel := 0
	for _, c := range m.convs {
		title := m.title(c)
		mark := "  "
		st := m.st.title
		if c.id == m.current {
			mark, st, sel = "▸ ", m.st.sel, len(out)
		}
		line := mark + st.Render(oneLine(Clean(title))) + m.st.dim.Render(flags(c))
		if n := c.unread(); n > 0 {
			badge := m.st.badge.Render(fmt.Sprintf(" %d ", n))
			line = fit(line, w-ansi.StringWidth(badge)) + badge
		}
		preview := ""
		if c.lastText != "" {
			preview = Clean(oneLine(c.lastText))
			if c.kind == protocol.ConvGroup || c.lastFrom == m.me {
				preview = m.nameOf(c.lastFrom) + ": " + preview
			}
		}
		out = append(out, line, "  "+m.st.dim.Render(preview))
	}
	if len(m.convs) == 0 {
		out = append(out, m.st.dim.Render("  none yet"))
	}
	if len(m.incoming)+len(m.outgoing) > 0 {
		out = append(out, "", m.st.head.Render("Friend requests"))
		for _, r := range m.incoming {
			out = append(out, " "+m.st.warn.Render("?")+" "+r.From.Username+m.st.dim.Render(" /accept"))
		}
		for _, r := range m.outgoing {
			out = append(out, " "+m.st.dim.Render("… "+r.To.Username+" (waiting)"))
		}
	}
	out = append(out, "", m.st.head.Render("Friends"))
	for _, f := range m.friends {
		dot := m.st.dim.Render("○")
		if f.Online {
			dot = m.st.good.Render("●")
		}
		out = append(out, " "+dot+" "+f.Username)
	}
	if len(m.friends) == 0 {
		out = append(out, m.st.dim.Render("  none yet: /add NAME"))
	}
	if sel >= rows-1 { // keep the conversation shown in sight
		out = append(out[:1], out[sel-rows+3:]...)
	}
	return out
}

// chatView is the chat area: a title line, then the messages, or the
// panel over them.
func (m *Model) chatView(w, rows int) []string {
	if m.panel != nil {
		end := min(m.panelTop+rows-1, len(m.panel))
		head := m.st.dim.Render(" Esc closes")
		if end < len(m.panel) {
			head += m.st.dim.Render(" · PgDn for more")
		}
		out := []string{head}
		for _, l := range m.panel[m.panelTop:end] {
			out = append(out, " "+oneLine(Clean(l)))
		}
		return out
	}
	c := m.conv(m.current)
	if c == nil {
		var out []string
		for _, l := range []string{"", "No conversation yet. To start one:", "", "  /add NAME         ask someone to be your friend",
			"  /msg NAME         write to a friend", "  /group new NAME   make a group", "  /list, /join NAME find and join an open group", "",
			"/help lists every command."} {
			out = append(out, " "+m.st.dim.Render(l))
		}
		return out
	}
	head := " " + m.st.title.Render(oneLine(Clean(m.title(c)))) + m.st.dim.Render(m.about(c))
	if m.newBelow > 0 {
		head += m.st.warn.Render(fmt.Sprintf("  %d new ↓ (End)", m.newBelow))
	} else if m.scroll > 0 {
		head += m.st.warn.Render(fmt.Sprintf("  ↑ scrolled %d lines (PgDn, End)", m.scroll))
	}
	lines := m.chatLines(c)
	end := max(len(lines)-m.scroll, 0)
	start := max(end-(rows-1), 0)
	body := lines[start:end]
	if pad := rows - 1 - len(body); pad > 0 { // messages sit at the bottom
		body = append(make([]string, pad), body...)
	}
	return append([]string{head}, body...)
}

// about is the chat title's second part: presence, or the group's facts.
func (m *Model) about(c *conv) string {
	timer := ""
	if c.timer > 0 {
		timer = " · ⏱ " + client.TimerText(c.timer)
	}
	return m.aboutPeer(c) + timer
}

func (m *Model) aboutPeer(c *conv) string {
	if c.kind == protocol.ConvGroup {
		g, ok := m.groups[c.group]
		if !ok {
			return ""
		}
		kind := "invite-only"
		if g.Open {
			kind = "open"
		}
		return fmt.Sprintf(" · %s · id %d · %s", members(g.Members), g.GroupID, kind)
	}
	for _, f := range m.friends {
		if f.UserID == c.peer {
			if f.Online {
				return " · ● online"
			}
			return " · ○ offline"
		}
	}
	return " · not a friend"
}

// chatLines are every loaded line of c at the chat area's width, oldest
// first: a line about older history, the messages, then those not yet
// stored.
func (m *Model) chatLines(c *conv) []string {
	w := max(m.width-m.sideWidth()-1, 10)
	var top string
	switch {
	case c.loading:
		top = "loading older messages…"
	case c.more:
		top = "↑ PgUp for older messages"
	case c.kind == protocol.ConvGroup:
		top = "— the beginning of " + m.title(c) + " —"
	default:
		top = "— the beginning of your conversation with " + m.title(c) + " —"
	}
	out := []string{" " + m.st.dim.Render(oneLine(Clean(top)))}
	day := ""
	dayLine := func(t time.Time) {
		if d := t.Format("Mon 2 Jan 2006"); d != day {
			day = d
			out = append(out, " "+m.st.dim.Render("── "+d+" ──"))
		}
	}
	// Refused messages stand where they were typed, in time order, one
	// line each.
	failed := m.failedOf(c.id)
	fi := 0
	failedLine := func(o *outgoing) {
		t := time.UnixMilli(o.q.At)
		dayLine(t)
		n := fi + 1
		line := " " + m.st.dim.Render(t.Format("15:04")) + " " + m.st.bad.Render(fmt.Sprintf("✗ [%d]", n)) + " " + clip(o.q.Body, 20) +
			m.st.bad.Render(" not sent: "+o.q.Failed)
		out = append(out, line)
		fi++
	}
	ni := 0
	noteLine := func(n note) {
		t := time.UnixMilli(n.at)
		dayLine(t)
		out = append(out, " "+m.st.dim.Render(t.Format("15:04")+" · "+oneLine(Clean(m.groupWords(&n.e)))))
		ni++
	}
	divided := !c.divided
	for _, x := range c.msgs {
		for fi < len(failed) && failed[fi].q.At < x.ServerTime {
			failedLine(failed[fi])
		}
		for ni < len(c.notes) && c.notes[ni].at < x.ServerTime {
			noteLine(c.notes[ni])
		}
		if protocol.IsEvent(x.ContentType) {
			continue // folded into the message it names
		}
		t := time.UnixMilli(x.ServerTime)
		dayLine(t)
		if x.ContentType == protocol.ContentTimer {
			out = append(out, " "+m.st.dim.Render(t.Format("15:04")+" · "+oneLine(Clean(m.nameOf(x.From)+" "+timerWords(x)))))
			continue
		}
		if !divided && x.Seq > c.divider && x.From != m.me {
			divided = true
			out = append(out, " "+m.st.bad.Render(dividerText))
		}
		if c.found != 0 && x.Seq == c.found {
			out = append(out, " "+m.st.bad.Render(foundText))
		}
		body, quote, reactions := m.decorate(c, &x)
		if quote != "" {
			out = append(out, "       "+m.st.dim.Render(clip(oneLine(Clean(quote)), max(w-8, 10))))
		}
		out = append(out, m.message(w, t, x.From, body, m.receiptMark(c, &x))...)
		if reactions != "" {
			out = append(out, "       "+clip(Clean(reactions), max(w-8, 10)))
		}
	}
	for fi < len(failed) {
		failedLine(failed[fi])
	}
	for ni < len(c.notes) {
		noteLine(c.notes[ni])
	}
	if s := m.typingLine(c); s != "" {
		out = append(out, " "+m.st.dim.Render(s))
	}
	for _, o := range m.queuedOf(c.id) {
		note := m.st.dim.Render(" (sending…)")
		if m.state != stateOnline {
			note = m.st.warn.Render(" (queued, offline)")
		}
		out = append(out, m.message(w, time.UnixMilli(o.q.At), m.me, o.q.Body, note)...)
	}
	return out
}

// dividerText marks where the unread messages begin.
const dividerText = "──────── new ────────"

// message lays out one message: "15:04 name: text", wrapped under the
// text.
func (m *Model) message(w int, t time.Time, from int64, body, note string) []string {
	const indent = 7 // " 15:04 "
	name := m.nameOf(from)
	if from == m.me {
		name = m.names[m.me]
	}
	st := m.st.other
	if from == m.me {
		st = m.st.me
	}
	lines := wrapSafe(name+": "+Clean(body), max(w-indent, 10))
	for i, l := range lines {
		if i == 0 {
			if rest, ok := strings.CutPrefix(l, name+":"); ok {
				l = st.Render(name) + ":" + rest
			}
			lines[i] = " " + m.st.dim.Render(t.Format("15:04")) + " " + l
		} else {
			lines[i] = strings.Repeat(" ", indent) + l
		}
	}
	lines[len(lines)-1] += note
	return lines
}

func (m *Model) statusLine() string {
	var st lipgloss.Style
	switch m.state {
	case stateOnline:
		st = m.st.good
	case stateReconnecting, stateRedirected, stateConnected:
		st = m.st.warn
	default:
		st = m.st.bad
	}
	s := st.Render("● " + m.statusText())
	if m.me != 0 {
		s += m.st.dim.Render(" │ ") + m.names[m.me]
	}
	if l := m.left(); l != "" {
		s += m.st.dim.Render(" │ ") + m.st.warn.Render(l)
	}
	if m.notice != "" {
		n := oneLine(Clean(m.notice))
		if m.bad {
			n = m.st.bad.Render(n)
		}
		s += m.st.dim.Render(" │ ") + n
	}
	return s
}

// fit cuts or pads s to w cells, on every terminal: it counts each
// grapheme cluster as wide as the terminals that draw its parts one by one
// (tmux draws 👍🏽 as four cells, where Unicode says two), so that no line
// ever wraps. Where the terminal agrees with Unicode the line is that much
// shorter.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	s = ansi.Truncate(s, w, "…")
	if ex := extraWidth(s); ex > 0 && ansi.StringWidth(s)+ex > w {
		s = ansi.Truncate(s, max(w-ex, 0), "…")
	}
	return s + strings.Repeat(" ", max(w-ansi.StringWidth(s)-extraWidth(s), 0))
}

// extraWidth is how many more cells than its Unicode width s may take on
// a terminal that draws the runes of a grapheme cluster (an emoji with a
// skin tone, a ZWJ sequence, a flag) one by one.
func extraWidth(s string) int {
	s = ansi.Strip(s)
	ex := 0
	state := -1
	for len(s) > 0 {
		var cluster string
		var w int
		cluster, s, w, state = uniseg.FirstGraphemeClusterInString(s, state)
		if len(cluster) <= 1 || utf8.RuneCountInString(cluster) == 1 {
			continue
		}
		sum := 0
		for _, r := range cluster {
			sum += uniseg.StringWidth(string(r))
		}
		ex += max(sum-w, 0)
	}
	return ex
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

// Clean keeps what others typed from driving the terminal: control
// characters, escape sequences among them, become visible marks; line
// breaks stay.
func Clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r), r == unicode.ReplacementChar:
			return '�'
		}
		return r
	}, strings.ToValidUTF8(s, "�"))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ⏎ ") }

func clip(s string, n int) string {
	s = oneLine(Clean(s))
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// wrapSafe wraps plain text at limit cells, words whole where they fit,
// counting each grapheme cluster as wide as fit does. A URL is never
// split: one longer than a line gets a line of its own, cut short with
// "…", and is a terminal hyperlink (OSC 8) to the whole of it.
func wrapSafe(text string, limit int) []string {
	links := map[string]string{} // shown → the whole URL
	words := strings.Split(text, " ")
	for i, w := range words {
		if (strings.HasPrefix(w, "https://") || strings.HasPrefix(w, "http://")) && ansi.StringWidth(w) > limit && !strings.Contains(w, "\n") {
			shown := ansi.Truncate(w, limit, "…")
			links[shown] = w
			words[i] = shown
		}
	}
	text = strings.Join(words, " ")
	var out []string
	defer func() {
		for i, l := range out {
			for shown, url := range links {
				if strings.Contains(l, shown) {
					out[i] = strings.Replace(l, shown, ansi.SetHyperlink(url)+shown+ansi.ResetHyperlink(), 1)
				}
			}
		}
	}()
	for _, l := range strings.Split(ansi.Wrap(text, limit, ""), "\n") {
		for {
			head, rest := cutSafe(l, limit)
			out = append(out, head)
			if rest == "" {
				break
			}
			l = rest
		}
	}
	return out
}

// cutSafe splits plain s where it passes limit cells, counted as fit
// does.
func cutSafe(s string, limit int) (string, string) {
	width, i := 0, 0
	state := -1
	rest := s
	for len(rest) > 0 {
		var cluster string
		var w int
		cluster, rest, w, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if utf8.RuneCountInString(cluster) > 1 {
			sum := 0
			for _, r := range cluster {
				sum += uniseg.StringWidth(string(r))
			}
			w = max(w, sum)
		}
		if width+w > limit && i > 0 {
			return s[:i], s[i:]
		}
		width += w
		i += len(cluster)
	}
	return s, ""
}
