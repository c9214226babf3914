package ui

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Plain says an error in words for people.
func Plain(err error) string {
	var pe *protocol.Error
	var ke *client.KickError
	switch {
	case errors.As(err, &pe):
		switch pe.Code {
		case protocol.CodeBadCredentials:
			return "wrong username or password"
		case protocol.CodeUsernameTaken:
			return "that username is taken"
		case protocol.CodeNotFriends:
			return "you can only message friends: /add NAME first"
		case protocol.CodeBanned:
			return "this account is banned until " + time.UnixMilli(pe.Until).Format(time.RFC1123)
		case protocol.CodeNotMember:
			return "you are not a member of that group"
		}
		return fmt.Sprintf("the server said no: %s (%s)", pe.Message, pe.Code)
	case errors.As(err, &ke):
		return "disconnected by the server: " + ke.Message
	case errors.Is(err, client.ErrClosed):
		return "connection closed"
	}
	return err.Error()
}

// View implements tea.Model.
func (m *Model) View() string {
	if m.screen == screenLogin {
		return m.loginView()
	}
	var b strings.Builder
	left := 24
	rows := max(m.height-4, 5)
	list := m.listLines(left)
	chat := m.chatLines(max(m.width-left-3, 20), rows)
	if len(m.panel) > 0 {
		chat = append(append([]string{}, m.panel...), chat...)
		if len(chat) > rows {
			chat = chat[:rows]
		}
	}
	for i := range rows {
		l, r := "", ""
		if i < len(list) {
			l = list[i]
		}
		if i < len(chat) {
			r = chat[i]
		}
		fmt.Fprintf(&b, "%-*s │ %s\n", left, clip(l, left), r)
	}
	fmt.Fprintf(&b, "%s\n", strings.Repeat("─", max(m.width, 10)))
	fmt.Fprintf(&b, "[%s] %s\n", m.status, m.notice)
	fmt.Fprintf(&b, "> %s", m.input)
	return b.String()
}

func (m *Model) loginView() string {
	var b strings.Builder
	b.WriteString("parley — log in (Enter) or register (Ctrl+R); Tab switches field\n\n")
	cursor := func(f int) string {
		if m.field == f {
			return "▸"
		}
		return " "
	}
	fmt.Fprintf(&b, "%s username: %s\n", cursor(0), m.username)
	fmt.Fprintf(&b, "%s password: %s\n\n", cursor(1), strings.Repeat("*", len([]rune(m.password))))
	fmt.Fprintf(&b, "[%s] %s\n", m.status, m.notice)
	return b.String()
}

func (m *Model) listLines(width int) []string {
	out := []string{"conversations"}
	for _, c := range m.convs {
		sel := " "
		if c.id == m.current {
			sel = "▸"
		}
		unread := ""
		if c.unread > 0 {
			unread = fmt.Sprintf(" (%d)", c.unread)
		}
		out = append(out, clip(sel+c.title+unread, width))
	}
	if len(m.friends) > 0 {
		out = append(out, "", "friends")
		for _, f := range m.friends {
			out = append(out, " "+mark(f.Online)+" "+f.Username)
		}
	}
	return out
}

func (m *Model) chatLines(width, rows int) []string {
	c := m.conv(m.current)
	if c == nil {
		return []string{"no conversation yet: /msg NAME, /add NAME, /group new NAME — /help"}
	}
	out := []string{c.title}
	for _, x := range c.msgs {
		t := time.UnixMilli(x.ServerTime).Format("15:04")
		out = append(out, clip(fmt.Sprintf("%s %s: %s", t, m.nameOf(x.From), x.Body), width))
	}
	if len(out) > rows {
		out = append(out[:1], out[len(out)-rows+1:]...)
	}
	return out
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
