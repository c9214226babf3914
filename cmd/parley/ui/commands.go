package ui

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// Command is a parsed slash command.
type Command struct {
	Name string   // "add", "group new", ...
	Args []string // the rest, split on spaces
	Text string   // the rest as typed, for notes
}

// commands lists every command with its arguments and help line.
var commands = []struct {
	name, args, help string
	min              int
}{
	{"msg", "NAME", "open the conversation with a user", 1},
	{"add", "NAME [NOTE]", "send a friend request", 1},
	{"accept", "NAME", "accept a friend request", 1},
	{"decline", "NAME", "decline a friend request", 1},
	{"requests", "", "list pending friend requests", 0},
	{"friends", "", "list friends, online or not", 0},
	{"group new", "NAME [USER...]", "create a group with friends", 1},
	{"group open", "NAME", "create a group anyone may join", 1},
	{"join", "GROUP_ID", "join an open group", 1},
	{"invite", "NAME...", "add users to the current group", 1},
	{"leave", "", "leave the current group", 0},
	{"members", "", "list the current group's members", 0},
	{"groups", "", "list your groups", 0},
	{"history", "", "load older messages (also PgUp)", 0},
	{"delete", "", "delete the current conversation's history, for you", 0},
	{"help", "", "this list", 0},
	{"quit", "", "leave parley (also Ctrl+C)", 0},
}

// Parse reads a slash command line.
func Parse(line string) (Command, error) {
	fields := strings.Fields(strings.TrimPrefix(line, "/"))
	if len(fields) == 0 {
		return Command{}, errors.New("empty command: /help lists them")
	}
	name, rest := fields[0], fields[1:]
	if name == "group" {
		if len(rest) == 0 || (rest[0] != "new" && rest[0] != "open") {
			return Command{}, errors.New("usage: /group new NAME [USER...] or /group open NAME")
		}
		name, rest = "group "+rest[0], rest[1:]
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		if len(rest) < c.min {
			return Command{}, fmt.Errorf("usage: /%s %s", c.name, c.args)
		}
		text := ""
		if len(rest) > 1 {
			text = strings.Join(rest[1:], " ")
		}
		return Command{Name: name, Args: rest, Text: text}, nil
	}
	return Command{}, fmt.Errorf("unknown command /%s: /help lists them", name)
}

// Help is the help text, one command a line.
func Help() []string {
	out := []string{"commands:"}
	for _, c := range commands {
		out = append(out, fmt.Sprintf("  /%s %s — %s", c.name, c.args, c.help))
	}
	return append(out, "keys: Tab/Shift+Tab switch conversation, PgUp older messages, Esc close this panel")
}

// userID finds a user by exact username, ignoring case.
func userID(ctx context.Context, b Backend, name string) (int64, error) {
	page, err := b.SearchUsers(ctx, name, "", 5)
	if err != nil {
		return 0, err
	}
	for _, u := range page.Users {
		if strings.EqualFold(u.Username, name) {
			return u.UserID, nil
		}
	}
	return 0, fmt.Errorf("no user named %q", name)
}

// currentGroup is the group of the conversation shown.
func (m *Model) currentGroup() (int64, error) {
	p, ok := protocol.ParseConv(m.current)
	if !ok || p.Kind != protocol.ConvGroup {
		return 0, errors.New("open a group conversation first")
	}
	return p.Group, nil
}

// run starts a command; its result comes back as a message.
func (m *Model) run(c Command) tea.Cmd {
	switch c.Name {
	case "help":
		m.panel = Help()
		return nil
	case "quit":
		m.quit = true
		return tea.Quit
	case "history":
		if cv := m.conv(m.current); cv != nil && cv.more {
			return m.loadHistory(cv)
		}
		m.notice = "no older messages"
		return nil
	}
	me := m.me
	current := m.current
	group, groupErr := m.currentGroup()
	do := func(f func(ctx context.Context) (resultMsg, error)) tea.Cmd {
		return func() tea.Msg {
			ctx, cancel := m.ctx()
			defer cancel()
			r, err := f(ctx)
			if err != nil {
				return resultMsg{err: err}
			}
			return r
		}
	}
	lines := func(f func(ctx context.Context) ([]string, error)) tea.Cmd {
		return func() tea.Msg {
			ctx, cancel := m.ctx()
			defer cancel()
			l, err := f(ctx)
			return panelMsg{lines: l, err: err}
		}
	}
	switch c.Name {
	case "msg":
		return do(func(ctx context.Context) (resultMsg, error) {
			id, err := userID(ctx, m.b, c.Args[0])
			if err != nil {
				return resultMsg{}, err
			}
			if id == me {
				return resultMsg{}, errors.New("that is you")
			}
			return resultMsg{open: protocol.DirectConv(me, id), refresh: true}, nil
		})
	case "add":
		return do(func(ctx context.Context) (resultMsg, error) {
			id, err := userID(ctx, m.b, c.Args[0])
			if err != nil {
				return resultMsg{}, err
			}
			return resultMsg{text: "friend request sent to " + c.Args[0]}, m.b.RequestFriend(ctx, id, c.Text)
		})
	case "accept", "decline":
		accept := c.Name == "accept"
		return do(func(ctx context.Context) (resultMsg, error) {
			id, err := userID(ctx, m.b, c.Args[0])
			if err != nil {
				return resultMsg{}, err
			}
			if err := m.b.AnswerFriend(ctx, id, accept); err != nil {
				return resultMsg{}, err
			}
			if accept {
				return resultMsg{text: c.Args[0] + " is now your friend", refresh: true, open: protocol.DirectConv(me, id)}, nil
			}
			return resultMsg{text: "declined " + c.Args[0], refresh: true}, nil
		})
	case "requests":
		return lines(func(ctx context.Context) ([]string, error) {
			l, err := m.b.FriendRequests(ctx)
			out := []string{"friend requests:"}
			for _, r := range l.Incoming {
				out = append(out, fmt.Sprintf("  from %s %q — /accept %s", r.From.Username, r.Note, r.From.Username))
			}
			for _, r := range l.Outgoing {
				out = append(out, "  to "+r.To.Username+" (waiting)")
			}
			return out, err
		})
	case "friends":
		return lines(func(ctx context.Context) ([]string, error) {
			fs, err := m.b.Friends(ctx)
			out := []string{"friends:"}
			for _, f := range fs {
				out = append(out, "  "+mark(f.Online)+" "+f.Username)
			}
			return out, err
		})
	case "group new", "group open":
		return do(func(ctx context.Context) (resultMsg, error) {
			var ids []int64
			for _, n := range c.Args[1:] {
				id, err := userID(ctx, m.b, n)
				if err != nil {
					return resultMsg{}, err
				}
				ids = append(ids, id)
			}
			g, err := m.b.CreateGroup(ctx, c.Args[0], c.Name == "group open", ids...)
			if err != nil {
				return resultMsg{}, err
			}
			return resultMsg{text: fmt.Sprintf("group %q created (id %d)", g.Name, g.GroupID), refresh: true, open: protocol.GroupConv(g.GroupID)}, nil
		})
	case "join":
		id, err := strconv.ParseInt(strings.TrimPrefix(c.Args[0], "#"), 10, 64)
		if err != nil {
			m.notice = "usage: /join GROUP_ID (a number)"
			return nil
		}
		return do(func(ctx context.Context) (resultMsg, error) {
			g, err := m.b.JoinGroup(ctx, id)
			if err != nil {
				return resultMsg{}, err
			}
			return resultMsg{text: "joined " + g.Name, refresh: true, open: protocol.GroupConv(id)}, nil
		})
	case "invite", "leave", "members", "delete":
		if c.Name != "delete" && groupErr != nil {
			m.notice = groupErr.Error()
			return nil
		}
	}
	switch c.Name {
	case "invite":
		return do(func(ctx context.Context) (resultMsg, error) {
			var ids []int64
			for _, n := range c.Args {
				id, err := userID(ctx, m.b, n)
				if err != nil {
					return resultMsg{}, err
				}
				ids = append(ids, id)
			}
			return resultMsg{text: "invited " + strings.Join(c.Args, ", ")}, m.b.InviteToGroup(ctx, group, ids...)
		})
	case "leave":
		return do(func(ctx context.Context) (resultMsg, error) {
			return resultMsg{text: "left the group", refresh: true}, m.b.LeaveGroup(ctx, group)
		})
	case "members":
		return lines(func(ctx context.Context) ([]string, error) {
			ms, err := m.b.GroupMembers(ctx, group)
			out := []string{"members:"}
			for _, x := range ms {
				owner := ""
				if x.Owner {
					owner = " (owner)"
				}
				out = append(out, "  "+mark(x.Online)+" "+x.Username+owner)
			}
			return out, err
		})
	case "groups":
		return lines(func(ctx context.Context) ([]string, error) {
			gs, err := m.b.Groups(ctx)
			out := []string{"groups:"}
			for _, g := range gs {
				out = append(out, fmt.Sprintf("  #%s (id %d, %d members)", g.Name, g.GroupID, g.Members))
			}
			return out, err
		})
	case "delete":
		cv := m.conv(current)
		if cv == nil || len(cv.msgs) == 0 {
			m.notice = "nothing to delete"
			return nil
		}
		upTo := cv.msgs[len(cv.msgs)-1].Seq
		cv.msgs, cv.oldest, cv.more, cv.last = nil, 0, false, ""
		return do(func(ctx context.Context) (resultMsg, error) {
			return resultMsg{text: "history deleted (for you)"}, m.b.DeleteHistory(ctx, current, nil, upTo)
		})
	}
	m.notice = "unknown command"
	return nil
}

func mark(online bool) string {
	if online {
		return "●"
	}
	return "○"
}
