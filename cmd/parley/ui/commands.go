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
	Args []string // the words after the name
	Text string   // the line after the first argument, as typed (a note)
	Rest string   // the line after the name, as typed (a group name)
	Num  int64    // the number argument of /join #ID and /delete; 0 if none
}

// spec describes one command: its arguments and help line.
type spec struct {
	name, args, help string
	min, max         int  // number of arguments; max -1: any
	num              bool // the first argument, if given, is a number
	inGroup          bool // acts on the group shown
}

var specs = []spec{
	{name: "msg", args: "NAME", help: "open the conversation with a user", min: 1, max: 1},
	{name: "add", args: "NAME [NOTE]", help: "send a friend request", min: 1, max: -1},
	{name: "accept", args: "NAME", help: "accept a friend request", min: 1, max: 1},
	{name: "decline", args: "NAME", help: "decline a friend request", min: 1, max: 1},
	{name: "unfriend", args: "NAME", help: "end a friendship", min: 1, max: 1},
	{name: "requests", help: "list friend requests, to you and from you"},
	{name: "friends", help: "list your friends, online (●) or not (○)"},
	{name: "group new", args: "NAME [USER...]", help: "create an invite-only group with these users", min: 1, max: -1},
	{name: "group open", args: "NAME", help: "create a group anyone may /join", min: 1, max: 1},
	{name: "list", args: "[TEXT]", help: "list the open groups (whose name starts with TEXT)", max: -1},
	{name: "join", args: "NAME|#ID", help: "join an open group by its name (or its id)", min: 1, max: -1},
	{name: "open", help: "let anyone find the group shown and /join it (owner)", inGroup: true},
	{name: "close", help: "make the group shown invite-only again (owner)", inGroup: true},
	{name: "invite", args: "NAME...", help: "add users to the group shown", min: 1, max: -1, inGroup: true},
	{name: "leave", help: "leave the group shown", inGroup: true},
	{name: "members", help: "list the members of the group shown", inGroup: true},
	{name: "groups", help: "list your groups, with their ids"},
	{name: "history", help: "load older messages (PgUp at the top does too)"},
	{name: "delete", args: "N|all", help: "hide the last N messages (or all) from you only", max: 1, num: true},
	{name: "search", args: "TEXT", help: "find your messages holding these words (any language)", min: 1, max: -1},
	{name: "more", help: "show the next page of the last search's matches (PgDn at their end too)"},
	{name: "goto", args: "N", help: "open search result N in its conversation", min: 1, max: 1, num: true},
	{name: "reply", args: "N TEXT", help: "reply to the N-th newest message (1: the newest)", min: 2, max: -1, num: true},
	{name: "edit", args: "TEXT", help: "replace the text of your newest message here (its history is kept)", min: 1, max: -1},
	{name: "recall", args: "[N]", help: "recall your newest message for everyone (N: the N-th newest; a group's owner: anyone's)", max: 1, num: true},
	{name: "react", args: "N EMOJI", help: "react to the N-th newest message", min: 2, max: 2, num: true},
	{name: "unreact", args: "N EMOJI", help: "take your reaction back", min: 2, max: 2, num: true},
	{name: "expire", args: "TIME|off", help: "disappearing messages here: new messages vanish after TIME (30s, 5m, 1h, 7d; a group's owner)", min: 1, max: 1},
	{name: "mute", help: "mute the conversation shown (do not disturb)"},
	{name: "unmute", help: "unmute the conversation shown"},
	{name: "pin", help: "pin the conversation shown on top of the list"},
	{name: "unpin", help: "unpin the conversation shown"},
	{name: "retry", args: "[N]", help: "send again failed message N here (or all of them)", max: 1, num: true},
	{name: "discard", args: "N", help: "drop failed message N here", min: 1, max: 1, num: true},
	{name: "send-file", args: "PATH", help: "send a file to the conversation shown", min: 1, max: -1},
	{name: "save", args: "N", help: "save attachment N (the number on its line) in the current directory", min: 1, max: 1, num: true},
	{name: "help", help: "this list"},
	{name: "quit", help: "leave parley (Ctrl+C too)"},
}

// Parse reads a slash command line. Its errors are for people.
func Parse(line string) (Command, error) {
	rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "/"))
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return Command{}, errors.New("an empty command: /help lists them")
	}
	name := strings.ToLower(fields[0])
	rest = strings.TrimSpace(rest[len(fields[0]):])
	if name == "group" {
		if len(fields) < 2 || (fields[1] != "new" && fields[1] != "open") {
			return Command{}, errors.New("usage: /group new NAME [USER...], or /group open NAME")
		}
		name = "group " + fields[1]
		fields = fields[1:]
		rest = strings.TrimSpace(rest[len(fields[0]):])
	}
	args := fields[1:]
	for _, s := range specs {
		if s.name != name {
			continue
		}
		if len(args) < s.min || (s.max >= 0 && len(args) > s.max) {
			return Command{}, fmt.Errorf("usage: /%s %s", s.name, s.args)
		}
		c := Command{Name: name, Args: args, Rest: rest}
		if len(args) > 0 {
			c.Text = strings.TrimSpace(rest[len(args[0]):])
		}
		if s.name == "join" {
			// "#12" and "12" name a group by id; anything else by name.
			if n, err := strconv.ParseInt(strings.TrimPrefix(rest, "#"), 10, 64); err == nil {
				if n < 1 {
					return Command{}, fmt.Errorf("usage: /join %s (a group id is above 0)", s.args)
				}
				c.Num = n
			}
			return c, nil
		}
		if s.name == "delete" && len(args) > 0 && strings.EqualFold(args[0], "all") {
			c.Num = -1
			return c, nil
		}
		if s.num && len(args) > 0 {
			n, err := strconv.ParseInt(strings.TrimPrefix(args[0], "#"), 10, 64)
			if err != nil || n < 1 {
				return Command{}, fmt.Errorf("usage: /%s %s (a number, not %q)", s.name, s.args, args[0])
			}
			c.Num = n
		}
		return c, nil
	}
	return Command{}, fmt.Errorf("no command /%s: /help lists them", name)
}

// Help is the help text, one line a command.
func Help() []string {
	out := []string{"commands", ""}
	for _, s := range specs {
		out = append(out, fmt.Sprintf("  /%-26s %s", strings.TrimSpace(s.name+" "+s.args), s.help))
	}
	return append(out, "",
		"keys",
		"  Enter                     send the line",
		"  Tab, Shift+Tab            next, previous conversation (Ctrl+N, Ctrl+P too)",
		"  PgUp, PgDn, Shift+↑/↓     scroll; older messages load at the top",
		"  End                       back to the newest message",
		"  ↑, ↓                      the lines you entered before (↑ first: a failed message, to edit)",
		"  Alt+Enter                 a new line in the same message",
		"  @name, Tab                complete a name to mention (@all: a group's owner)",
		"  Esc                       close this list",
		"  Ctrl+L                    draw the screen again",
		"  Ctrl+C                    quit",
		"",
		"a line starting with // is sent as a message starting with /")
}

// NoUserError says no user has the name asked for.
type NoUserError struct{ Name string }

func (e *NoUserError) Error() string { return fmt.Sprintf("no user named %q", e.Name) }

// FindUser looks a user up by exact username, ignoring case. It returns a
// *NoUserError if there is none.
func FindUser(ctx context.Context, s Social, name string) (protocol.UserInfo, error) {
	page, err := s.SearchUsers(ctx, name, "", 20)
	if err != nil {
		return protocol.UserInfo{}, err
	}
	for _, u := range page.Users {
		if strings.EqualFold(u.Username, name) {
			return u, nil
		}
	}
	return protocol.UserInfo{}, &NoUserError{Name: name}
}

// findUsers looks up every name, or fails on the first it cannot find.
func findUsers(ctx context.Context, s Social, names []string) ([]int64, error) {
	var ids []int64
	for _, n := range names {
		u, err := FindUser(ctx, s, n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, u.UserID)
	}
	return ids, nil
}

// run starts a parsed command; what the server answers comes back as a
// doneMsg or a panelMsg.
func (m *Model) run(c Command) tea.Cmd {
	cur := m.conv(m.current)
	var group int64
	if cur != nil && cur.kind == protocol.ConvGroup {
		group = cur.group
	}
	for _, s := range specs {
		if s.name == c.Name && s.inGroup && group == 0 {
			m.fail("/" + c.Name + " acts on a group: open one first (Tab)")
			return nil
		}
	}
	b, me := m.b, m.me
	do := func(f func(ctx context.Context) (doneMsg, error)) tea.Cmd {
		return m.call(func(ctx context.Context) tea.Msg {
			d, err := f(ctx)
			if err != nil {
				return doneMsg{err: err}
			}
			return d
		})
	}
	list := func(f func(ctx context.Context) ([]string, error)) tea.Cmd {
		return m.call(func(ctx context.Context) tea.Msg {
			lines, err := f(ctx)
			return panelMsg{lines: lines, err: err}
		})
	}
	switch c.Name {
	case "help":
		m.panel, m.panelTop = Help(), 0
	case "quit":
		return m.quit()
	case "history":
		if cur == nil || (cur.loaded && !cur.more) {
			m.say("no older messages")
			return nil
		}
		return m.loadHistory(cur)
	case "search":
		return m.search(strings.Join(c.Args, " "))
	case "more":
		return m.more()
	case "goto":
		return m.gotoFound(c.Num)
	case "reply", "edit", "recall", "react", "unreact":
		return m.runEvent(cur, c)
	case "retry":
		return m.retry(c.Num)
	case "discard":
		m.discard(c.Num)
		return nil
	case "delete":
		return m.deleteHistory(cur, int(c.Num))
	case "send-file":
		return m.sendFile(strings.TrimSpace(c.Args[0] + " " + c.Text))
	case "save":
		return m.save(c.Num, ".")
	case "mute", "unmute", "pin", "unpin":
		return m.setPrefs(cur, c.Name)
	case "expire":
		return m.setTimer(cur, c.Args[0])
	case "msg":
		name := c.Args[0]
		if id, ok := m.localUser(name); ok {
			if id == me {
				m.fail("that is you: pick someone else")
				return nil
			}
			m.say("")
			return m.open(protocol.DirectConv(me, id))
		}
		// Not known here: ask the server, and hold what is typed
		// meanwhile for that conversation.
		m.lookingUp, m.held = name, nil
		m.say("looking up " + name + "… lines typed now wait for that conversation")
		return m.call(func(ctx context.Context) tea.Msg {
			u, err := FindUser(ctx, b, name)
			if err == nil && u.UserID == me {
				err = errors.New("that is you: pick someone else")
			}
			if err != nil {
				return doneMsg{err: err, lookup: name}
			}
			return doneMsg{open: protocol.DirectConv(me, u.UserID), lookup: name}
		})
	case "add":
		return do(func(ctx context.Context) (doneMsg, error) {
			u, err := FindUser(ctx, b, c.Args[0])
			if err != nil {
				return doneMsg{}, err
			}
			if err := b.RequestFriend(ctx, u.UserID, c.Text); err != nil {
				return doneMsg{}, err
			}
			return doneMsg{text: "friend request sent to " + u.Username, refresh: true}, nil
		})
	case "accept", "decline":
		accept := c.Name == "accept"
		return do(func(ctx context.Context) (doneMsg, error) {
			u, err := FindUser(ctx, b, c.Args[0])
			if err != nil {
				return doneMsg{}, err
			}
			if err := b.AnswerFriend(ctx, u.UserID, accept); err != nil {
				return doneMsg{}, err
			}
			if accept { // the conversation shown stays: /msg opens theirs
				return doneMsg{text: u.Username + " is now your friend: /msg " + u.Username + " to say hello", refresh: true}, nil
			}
			return doneMsg{text: "declined " + u.Username + "'s friend request", refresh: true}, nil
		})
	case "unfriend":
		return do(func(ctx context.Context) (doneMsg, error) {
			u, err := FindUser(ctx, b, c.Args[0])
			if err != nil {
				return doneMsg{}, err
			}
			return doneMsg{text: u.Username + " is no longer your friend", refresh: true}, b.DeleteFriend(ctx, u.UserID)
		})
	case "requests":
		return list(func(ctx context.Context) ([]string, error) {
			l, err := b.FriendRequests(ctx)
			out := []string{"friend requests", ""}
			for _, r := range l.Incoming {
				out = append(out, fmt.Sprintf("  from %s %q — /accept %s or /decline %s", r.From.Username, r.Note, r.From.Username, r.From.Username))
			}
			for _, r := range l.Outgoing {
				out = append(out, "  to "+r.To.Username+", waiting for an answer")
			}
			if len(out) == 2 {
				out = append(out, "  none")
			}
			return out, err
		})
	case "friends":
		return list(func(ctx context.Context) ([]string, error) {
			fs, err := b.Friends(ctx)
			out := []string{"friends", ""}
			for _, f := range fs {
				out = append(out, "  "+mark(f.Online)+" "+f.Username)
			}
			if len(fs) == 0 {
				out = append(out, "  none yet: /add NAME")
			}
			return out, err
		})
	case "group new", "group open":
		return do(func(ctx context.Context) (doneMsg, error) {
			ids, err := findUsers(ctx, b, c.Args[1:])
			if err != nil {
				return doneMsg{}, err
			}
			g, err := b.CreateGroup(ctx, c.Args[0], c.Name == "group open", ids...)
			if err != nil {
				return doneMsg{}, err
			}
			text := fmt.Sprintf("created #%s (id %d)", g.Name, g.GroupID)
			if g.Open {
				text += fmt.Sprintf(": others join with /join %d", g.GroupID)
			}
			return doneMsg{text: text, refresh: true, open: protocol.GroupConv(g.GroupID)}, nil
		})
	case "join":
		return m.join(c)
	case "list":
		in := m.myGroups() // here, not in the command's goroutine, which must not read the model
		return list(func(ctx context.Context) ([]string, error) {
			return listOpenGroups(ctx, b, c.Rest, me, in)
		})
	case "open", "close":
		open, title := c.Name == "open", m.groupTitle(group)
		if g, ok := m.groups[group]; ok && g.Owner != me {
			m.fail("only the owner of " + title + " may open or close it")
			return nil
		}
		return do(func(ctx context.Context) (doneMsg, error) {
			if err := b.SetGroupOpen(ctx, group, open); err != nil {
				return doneMsg{}, err
			}
			if open {
				return doneMsg{text: title + " is open: anyone may find it with /list and /join it", refresh: true}, nil
			}
			return doneMsg{text: title + " is invite-only: members add people with /invite", refresh: true}, nil
		})
	case "invite":
		return do(func(ctx context.Context) (doneMsg, error) {
			ids, err := findUsers(ctx, b, c.Args)
			if err != nil {
				return doneMsg{}, err
			}
			return doneMsg{text: "added " + strings.Join(c.Args, ", "), refresh: true}, b.InviteToGroup(ctx, group, ids...)
		})
	case "leave":
		title := m.groupTitle(group)
		return do(func(ctx context.Context) (doneMsg, error) {
			return doneMsg{text: "you left " + title, refresh: true, drop: protocol.GroupConv(group)}, b.LeaveGroup(ctx, group)
		})
	case "members":
		title := m.groupTitle(group)
		return list(func(ctx context.Context) ([]string, error) {
			ms, err := b.GroupMembers(ctx, group)
			out := []string{"members of " + title, ""}
			for _, x := range ms {
				role := ""
				if x.Owner {
					role = " (owner)"
				}
				out = append(out, "  "+mark(x.Online)+" "+x.Username+role)
			}
			return out, err
		})
	case "groups":
		return list(func(ctx context.Context) ([]string, error) {
			gs, err := b.Groups(ctx)
			out := []string{"groups", ""}
			for _, g := range gs {
				kind := "invite-only"
				if g.Open {
					kind = "open"
				}
				out = append(out, fmt.Sprintf("  #%s — id %d, %s, %s", g.Name, g.GroupID, members(g.Members), kind))
			}
			if len(gs) == 0 {
				out = append(out, "  none yet: /group new NAME, or /list and /join NAME")
			}
			return out, err
		})
	}
	return nil
}

// localUser finds a user by name among those this screen knows: friends,
// and the people of its conversations.
func (m *Model) localUser(name string) (int64, bool) {
	for _, f := range m.friends {
		if strings.EqualFold(f.Username, name) {
			return f.UserID, true
		}
	}
	for id, n := range m.names {
		if strings.EqualFold(n, name) {
			return id, true
		}
	}
	return 0, false
}

// deleteHistory hides the last n loaded messages of c (all when n is -1,
// after /delete asked) from this user.
func (m *Model) deleteHistory(c *conv, n int) tea.Cmd {
	if c == nil || c.top() == 0 || (n > 0 && len(c.msgs) == 0) {
		m.fail("nothing to delete here")
		return nil
	}
	if n == 0 {
		m.fail(fmt.Sprintf("hide the whole history with %s from you? /delete all does it; /delete N hides the last N", m.title(c)))
		return nil
	}
	if n < 0 {
		n = 0
	}
	n = min(n, 500) // the most seqs one DeleteHistory takes
	var seqs []uint64
	var upTo uint64
	title := m.title(c)
	if n == 0 {
		upTo = c.top()
		c.msgs, c.more, c.next, c.lastText = nil, false, 0, ""
	} else {
		k := max(len(c.msgs)-n, 0)
		for _, x := range c.msgs[k:] {
			seqs = append(seqs, x.Seq)
		}
		c.msgs = c.msgs[:k]
		c.lastText = ""
		if k > 0 {
			c.lastText = MessageText(c.msgs[k-1])
		}
	}
	m.scroll = 0
	b, id := m.b, c.id
	return m.call(func(ctx context.Context) tea.Msg {
		if err := b.DeleteHistory(ctx, id, seqs, upTo); err != nil {
			return doneMsg{err: err}
		}
		if n == 0 {
			return doneMsg{text: "the history with " + title + " is hidden from you (not from the others)"}
		}
		return doneMsg{text: fmt.Sprintf("%d message(s) hidden from you (not from the others)", len(seqs))}
	})
}

// members says a member count: "1 member", "3 members".
func members(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

func mark(online bool) string {
	if online {
		return "●"
	}
	return "○"
}
