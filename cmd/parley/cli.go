package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
)

// command is one of parley's one-shot commands.
type command struct {
	name, args, help string
	min, max         int // number of arguments; max -1: any
	// do runs with a client logged in with the saved session; run, if set
	// instead, runs without.
	do  func(a *app, ctx context.Context, c *client.Client, args []string) error
	run func(a *app, args []string) error
	// check, if set, finds usage mistakes before the server is asked.
	check func(args []string) error
}

// commandList is every one-shot command, in the order help lists them.
func commandList() []command {
	commands := []command{
		{name: "register", args: "NAME [PASSWORD]", help: "create an account and keep its session (no PASSWORD: asked for, or read from stdin)", min: 1, max: 2, run: func(a *app, args []string) error { return a.login(true, args) }},
		{name: "login", args: "NAME [PASSWORD]", help: "log in and keep the session", min: 1, max: 2, run: func(a *app, args []string) error { return a.login(false, args) }},
		{name: "logout", help: "end the session on the server and forget it", run: (*app).logout},
		{name: "whoami", help: "check the saved session", do: (*app).whoami},
		{name: "send", args: "NAME|GROUP TEXT...", help: "send a message", min: 2, max: -1, do: (*app).send},
		{name: "history", args: "NAME|GROUP [N]", help: "the last N messages (default 20, at most 500), oldest first", min: 1, max: 2, do: (*app).history,
			check: func(args []string) error { _, err := historyArgs(args); return err }},
		{name: "search", args: "WORDS...", help: "your messages holding every word, newest first (at most 50)", min: 1, max: -1, do: (*app).search},
		{name: "expire", args: "NAME|GROUP TIME|off", help: "disappearing messages: new messages of the conversation vanish after TIME (30s, 5m, 1h, 7d; a group's owner), or off", min: 2, max: 2, do: (*app).expire},
		{name: "conversations", help: "your conversations, with unread counts and the last message", do: (*app).conversations},
		{name: "friends", help: "your friends, online or not", do: (*app).friends},
		{name: "requests", help: "friend requests to you and from you", do: (*app).requests},
		{name: "add", args: "NAME [NOTE...]", help: "send a friend request", min: 1, max: -1, do: friendDo("add")},
		{name: "accept", args: "NAME", help: "accept a friend request", min: 1, max: 1, do: friendDo("accept")},
		{name: "decline", args: "NAME", help: "decline a friend request", min: 1, max: 1, do: friendDo("decline")},
		{name: "unfriend", args: "NAME", help: "end a friendship", min: 1, max: 1, do: friendDo("unfriend")},
		{name: "groups", help: "your groups", do: (*app).groups},
		{name: "group create", args: "NAME [USER...]", help: "create a group with these users (--open: anyone may join)", min: 1, max: -1, do: (*app).groupCreate},
		{name: "group list", args: "[PREFIX]", help: "the open groups (whose name starts with PREFIX), at most 50", max: 1, do: (*app).groupList},
		{name: "group join", args: "NAME|GROUP_ID", help: "join an open group by its name or id", min: 1, max: 1, do: (*app).groupJoin},
		{name: "group open", args: "GROUP", help: "let anyone find and join a group you own", min: 1, max: 1, do: groupOpenDo(true)},
		{name: "group close", args: "GROUP", help: "make a group you own invite-only", min: 1, max: 1, do: groupOpenDo(false)},
		{name: "group invite", args: "GROUP USER...", help: "add users to a group", min: 2, max: -1, do: (*app).groupInvite},
		{name: "group leave", args: "GROUP", help: "leave a group", min: 1, max: 1, do: (*app).groupLeave},
		{name: "group members", args: "GROUP", help: "a group's members", min: 1, max: 1, do: (*app).groupMembers},
		{name: "group send", args: "GROUP TEXT...", help: "send a message to a group", min: 2, max: -1, do: (*app).groupSend},
		{name: "chat", help: "the full-screen chat (the default)", run: func(a *app, _ []string) error { return a.chat() }},
		{name: "help", help: "this list", run: func(a *app, _ []string) error { _, err := io.WriteString(a.out, a.usage()); return err }},
	}
	for i := range commands {
		if do := commands[i].do; do != nil {
			commands[i].run = func(a *app, args []string) error { return a.withSession(do, args) }
		}
	}
	return commands
}

func commandNamed(name string) (command, bool) {
	commands := commandList()
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// The dial error's cause, short: "connect: connection refused".
func dialCause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return ui.Plain(err)
}

func (a *app) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.timeout)
}

// pinsPath is the file of the server keys parley pinned.
func (a *app) pinsPath() string { return filepath.Join(filepath.Dir(a.path), "known_servers") }

// secure sets the encryption options: on unless --plaintext, the keys
// pinned in known_servers, and a warning on stderr when one is pinned.
func (a *app) secure(opts client.Options) client.Options {
	opts.Plaintext = a.plaintext
	opts.Pins = &client.FilePins{Path: a.pinsPath()}
	opts.OnPin = func(addr string, key []byte, rotated bool) {
		if rotated {
			fmt.Fprintf(a.errw, "parley: %s rotated its key; now pinned: %s\n", addr, secure.Fingerprint(key))
			return
		}
		fmt.Fprintf(a.errw, "parley: warning: first connection to %s; pinned its key %s (compare it with the server's; kept in %s)\n", addr, secure.Fingerprint(key), a.pinsPath())
	}
	return opts
}

// dial connects to the server; failing is exit code 3.
func (a *app) dial(ctx context.Context, opts client.Options) (*client.Client, error) {
	opts.Device = "parley"
	opts = a.secure(opts)
	c, err := client.Dial(ctx, a.addr, opts)
	if errors.Is(err, client.ErrKeyChanged) {
		return nil, &exitError{code: exitNoServer, msg: "refusing " + a.addr + ": its key is not the one pinned in " + a.pinsPath() + " (" + ui.Plain(err) + "); if the server's key was changed on purpose, remove its line there"}
	}
	if err != nil {
		return nil, &exitError{code: exitNoServer, msg: "cannot reach the server at " + a.addr + " (" + dialCause(err) + "): is it running? make run starts one"}
	}
	return c, nil
}

// withSession logs in with the saved session and runs do.
func (a *app) withSession(do func(*app, context.Context, *client.Client, []string) error, args []string) error {
	if a.cfg.Token == "" {
		return failf(exitNoLogin, "not logged in: run parley login NAME, or parley register NAME")
	}
	if a.cfg.Addr != "" && a.cfg.Addr != a.addr {
		return failf(exitNoLogin, "the saved session is for %s, not %s: run parley --addr %s login NAME", a.cfg.Addr, a.addr, a.addr)
	}
	ctx, cancel := a.context()
	defer cancel()
	c, err := a.dial(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	ok, err := c.LoginToken(ctx, a.cfg.Token)
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe) && pe.Code == protocol.CodeTokenInvalid:
		return &exitError{code: exitNoLogin, wire: pe.Code.String(), msg: fmt.Sprintf(
			"the saved session of %s is no longer valid (it expired, or a logout revoked it): run parley login %s", a.cfg.Username, a.cfg.Username)}
	case err != nil:
		return err
	}
	if ok.Token != "" && ok.Token != a.cfg.Token {
		// The server handed out a new token: keep it, or the next run fails.
		if err := saveConfig(a.path, sessionOf(a.addr, ok)); err != nil {
			fmt.Fprintln(a.errw, "parley: warning: the renewed session could not be saved:", err)
		}
	}
	return do(a, ctx, c, args)
}

// login registers or logs in, and keeps the session.
func (a *app) login(register bool, args []string) error {
	name := args[0]
	pass, err := a.password(args[1:])
	if err != nil {
		return err
	}
	ctx, cancel := a.context()
	defer cancel()
	c, err := a.dial(ctx, client.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	var ok protocol.LoginOK
	if register {
		ok, err = c.Register(ctx, name, pass)
	} else {
		ok, err = c.Login(ctx, name, pass)
	}
	if err != nil {
		return err
	}
	if err := saveConfig(a.path, sessionOf(a.addr, ok)); err != nil {
		return &exitError{code: exitConfig, msg: "logged in, but the session could not be saved: " + err.Error()}
	}
	return a.emit(sessionJSON{UserID: ok.UserID, Username: ok.Username, Addr: a.addr},
		fmt.Sprintf("logged in as %s (id %d) at %s; the session is kept in %s", ok.Username, ok.UserID, a.addr, a.path))
}

// password is the argument, or else asked for on a terminal, or else the
// first line of stdin.
func (a *app) password(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if f, ok := a.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.errw, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.errw)
		if err != nil {
			return "", failf(exitUsage, "cannot read the password: %v", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(a.in).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", failf(exitUsage, "no password: give it as an argument, type it on a terminal, or pipe it to stdin (%v)", err)
	}
	return line, nil
}

// logout revokes the saved session on the server and forgets it here.
func (a *app) logout(_ []string) error {
	if a.cfg.Token == "" {
		return failf(exitNoLogin, "not logged in")
	}
	name := a.cfg.Username
	err := a.withSession(func(_ *app, ctx context.Context, c *client.Client, _ []string) error {
		return c.Logout(ctx)
	}, nil)
	var xe *exitError
	if err != nil && !(errors.As(err, &xe) && xe.code == exitNoLogin) {
		return err // the session stays: it may still be valid
	}
	if err := saveConfig(a.path, config{Addr: a.cfg.Addr, Username: name}); err != nil {
		return &exitError{code: exitConfig, msg: "logged out, but the config could not be written: " + err.Error()}
	}
	return a.emit(doneJSON{Done: "logged_out", Username: name}, name+" is logged out")
}

func (a *app) whoami(_ context.Context, c *client.Client, _ []string) error {
	return a.emit(sessionJSON{UserID: c.UserID(), Username: a.cfg.Username, Addr: a.addr},
		fmt.Sprintf("%s (id %d) at %s", a.cfg.Username, c.UserID(), a.addr))
}

// JSON shapes of the results.
type (
	sessionJSON struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Addr     string `json:"addr"`
	}
	sentJSON struct {
		Conv       string `json:"conv"`
		Seq        uint64 `json:"seq"`
		MsgID      int64  `json:"msg_id"`
		ServerTime int64  `json:"server_time"`
	}
	messageJSON struct {
		Seq      uint64 `json:"seq"`
		MsgID    int64  `json:"msg_id"`
		From     int64  `json:"from"`
		FromName string `json:"from_name"`
		Text     string `json:"text"`
		Time     int64  `json:"time"` // Unix ms
	}
	foundJSON struct {
		Conv string `json:"conv"`
		messageJSON
	}
	convJSON struct {
		Conv    string       `json:"conv"`
		Title   string       `json:"title"`
		Unread  uint64       `json:"unread"`
		LastSeq uint64       `json:"last_seq"`
		Last    *messageJSON `json:"last,omitempty"`
		Timer   uint32       `json:"timer,omitempty"` // disappearing messages, seconds
	}
	userJSON struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Online   bool   `json:"online"`
	}
	requestJSON struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Note     string `json:"note,omitempty"`
		Created  int64  `json:"created"`
	}
	requestsJSON struct {
		Incoming []requestJSON `json:"incoming"`
		Outgoing []requestJSON `json:"outgoing"`
	}
	groupJSON struct {
		GroupID int64  `json:"group_id"`
		Name    string `json:"name"`
		Owner   int64  `json:"owner"`
		Open    bool   `json:"open"`
		Members int    `json:"members"`
		Created int64  `json:"created"`
	}
	memberJSON struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Online   bool   `json:"online"`
		Owner    bool   `json:"owner"`
	}
	doneJSON struct {
		Done     string `json:"done"`
		UserID   int64  `json:"user_id,omitempty"`
		Username string `json:"username,omitempty"`
		GroupID  int64  `json:"group_id,omitempty"`
	}
)

func groupOf(g protocol.GroupInfo) groupJSON {
	return groupJSON{g.GroupID, g.Name, g.Owner, g.Open, g.Members, g.Created}
}

// target is a conversation named on the command line.
type target struct {
	conv  string
	user  protocol.UserInfo // of a direct conversation
	group int64
	title string
}

// resolve reads NAME (a user) or GROUP (#ID or #NAME). With group set, a
// bare ID or NAME is a group too.
func (a *app) resolve(ctx context.Context, c *client.Client, s string, group bool) (target, error) {
	if g, ok := strings.CutPrefix(s, "#"); ok || group {
		id, err := a.groupID(ctx, c, g)
		if err != nil {
			return target{}, err
		}
		return target{conv: protocol.GroupConv(id), group: id, title: "#" + g}, nil
	}
	u, err := ui.FindUser(ctx, c, s)
	if err != nil {
		return target{}, err
	}
	if u.UserID == c.UserID() {
		return target{}, &exitError{code: exitRefused, msg: "that is you", wire: protocol.CodeSelfMessage.String()}
	}
	return target{conv: protocol.DirectConv(c.UserID(), u.UserID), user: u, title: u.Username}, nil
}

// groupID reads a group id, or finds one of the user's groups by name.
func (a *app) groupID(ctx context.Context, c *client.Client, s string) (int64, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	gs, err := c.Groups(ctx)
	if err != nil {
		return 0, err
	}
	for _, g := range gs {
		if strings.EqualFold(g.Name, s) {
			return g.GroupID, nil
		}
	}
	return 0, &exitError{code: exitRefused, msg: fmt.Sprintf("you are in no group named %q", s), wire: protocol.CodeNoSuchGroup.String()}
}

func (a *app) send(ctx context.Context, c *client.Client, args []string) error {
	return a.sendTo(ctx, c, args, false)
}

func (a *app) groupSend(ctx context.Context, c *client.Client, args []string) error {
	return a.sendTo(ctx, c, args, true)
}

// sendTo sends TEXT... to NAME or GROUP; TEXT "-" is stdin.
func (a *app) sendTo(ctx context.Context, c *client.Client, args []string, group bool) error {
	t, err := a.resolve(ctx, c, args[0], group)
	if err != nil {
		return err
	}
	text := strings.Join(args[1:], " ")
	if text == "-" {
		b, err := io.ReadAll(a.in)
		if err != nil {
			return failf(exitUsage, "cannot read stdin: %v", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if text == "" {
		return failf(exitUsage, "nothing to send")
	}
	s := protocol.Send{ClientMsgID: c.NewClientMsgID(), To: t.user.UserID, GroupID: t.group, Body: []byte(text)}
	ack, err := c.SendRaw(ctx, s)
	if err != nil {
		return err
	}
	return a.emit(sentJSON{ack.Conv, ack.Seq, ack.MsgID, ack.ServerTime}, fmt.Sprintf("sent to %s (#%d)", t.title, ack.Seq))
}

// expire sets the timer of the conversation with NAME or of GROUP.
func (a *app) expire(ctx context.Context, c *client.Client, args []string) error {
	d, err := client.ParseTimer(args[1])
	if err != nil {
		return failf(exitUsage, "usage: parley expire NAME|GROUP TIME|off: %v", err)
	}
	t, err := a.resolve(ctx, c, args[0], false)
	if err != nil {
		return err
	}
	ack, err := c.SetTimer(ctx, t.conv, d)
	if err != nil {
		return err
	}
	return a.emit(sentJSON{ack.Conv, ack.Seq, ack.MsgID, ack.ServerTime},
		fmt.Sprintf("disappearing messages with %s: %s (#%d)", t.title, client.TimerText(uint32(d/time.Second)), ack.Seq))
}

// historyArgs checks N before anything is asked of the server.
func historyArgs(args []string) (int, error) {
	if len(args) < 2 {
		return 20, nil
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 || n > 500 {
		return 0, failf(exitUsage, "usage: parley history NAME|GROUP [N]: N is 1 to 500, not %q", args[1])
	}
	return n, nil
}

func (a *app) history(ctx context.Context, c *client.Client, args []string) error {
	n, _ := historyArgs(args)
	t, err := a.resolve(ctx, c, args[0], false)
	if err != nil {
		return err
	}
	res, err := c.History(ctx, t.conv, 0, uint32(n))
	if err != nil {
		return err
	}
	names := newNames(c, t)
	out := make([]messageJSON, 0, len(res.Messages))
	text := make([]string, 0, len(res.Messages))
	for _, m := range slices.Backward(res.Messages) { // oldest first
		j := names.message(ctx, m)
		out = append(out, j)
		body := strings.ReplaceAll(ui.Clean(j.Text), "\n", "\n    ") // later lines indented
		text = append(text, fmt.Sprintf("%s %s: %s", time.UnixMilli(m.ServerTime).Format("2006-01-02 15:04"), j.FromName, body))
	}
	return a.emit(out, text...)
}

func (a *app) search(ctx context.Context, c *client.Client, args []string) error {
	res, err := c.Search(ctx, protocol.Search{Query: strings.Join(args, " "), Limit: 50})
	if err != nil {
		return err
	}
	names := newNames(c, target{})
	out := make([]foundJSON, 0, len(res.Messages))
	text := make([]string, 0, len(res.Messages))
	for _, m := range res.Messages {
		j := foundJSON{Conv: m.Conv, messageJSON: names.message(ctx, m)}
		out = append(out, j)
		body := strings.ReplaceAll(ui.Clean(j.Text), "\n", "\n    ")
		text = append(text, fmt.Sprintf("%s %s #%d %s: %s", time.UnixMilli(m.ServerTime).Format("2006-01-02 15:04"), m.Conv, m.Seq, j.FromName, body))
	}
	return a.emit(out, text...)
}

func (a *app) conversations(ctx context.Context, c *client.Client, _ []string) error {
	list, err := c.Conversations(ctx, 500)
	if err != nil {
		return err
	}
	gs, err := c.Groups(ctx)
	if err != nil {
		return err
	}
	groups := map[int64]string{}
	for _, g := range gs {
		groups[g.GroupID] = g.Name
	}
	names := newNames(c, target{})
	out := make([]convJSON, 0, len(list))
	var text []string
	for _, cv := range list {
		p, ok := protocol.ParseConv(cv.Conv)
		if !ok {
			continue
		}
		j := convJSON{Conv: cv.Conv, Unread: cv.Unread, LastSeq: cv.LastSeq, Timer: cv.Timer}
		if p.Kind == protocol.ConvGroup {
			name, member := groups[p.Group]
			if !member {
				continue // a group left
			}
			j.Title = "#" + name // JSON keeps it as it is; the text below cleans it
		} else {
			j.Title = names.name(ctx, p.Peer(c.UserID()))
		}
		line := oneLine(j.Title)
		if cv.Unread > 0 {
			line += fmt.Sprintf(" (%d unread)", cv.Unread)
		}
		if cv.Timer > 0 {
			line += " ⏱ " + client.TimerText(cv.Timer)
		}
		if cv.Last != nil {
			m := names.message(ctx, *cv.Last)
			j.Last = &m
			line += fmt.Sprintf("\t%s: %s", m.FromName, oneLine(m.Text))
		}
		out = append(out, j)
		text = append(text, line)
	}
	return a.emit(out, text...)
}

// names finds the usernames of message senders, asking the server once
// per user it does not know.
type names struct {
	c     *client.Client
	known map[int64]string
}

func newNames(c *client.Client, t target) *names {
	n := &names{c: c, known: map[int64]string{}}
	if t.user.UserID != 0 {
		n.known[t.user.UserID] = t.user.Username
	}
	return n
}

func (n *names) name(ctx context.Context, id int64) string {
	if s, ok := n.known[id]; ok {
		return s
	}
	s := fmt.Sprintf("user-%d", id)
	if u, err := n.c.Profile(ctx, id); err == nil && u.Username != "" {
		s = u.Username
	}
	n.known[id] = s
	return s
}

func (n *names) message(ctx context.Context, m protocol.Message) messageJSON {
	return messageJSON{Seq: m.Seq, MsgID: m.MsgID, From: m.From, FromName: n.name(ctx, m.From), Text: ui.MessageText(m), Time: m.ServerTime}
}
