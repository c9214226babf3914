// Command parley is the terminal chat client.
//
//	parley [flags]                         the full-screen chat
//	parley [flags] register NAME PASSWORD  create an account; saves the token
//	parley [flags] login NAME PASSWORD     log in; saves the token
//	parley [flags] send NAME|#GROUP TEXT   send a message
//	parley [flags] history NAME|#GROUP [N] the last N messages (default 20)
//	parley [flags] friends                 friends and whether they are online
//	parley [flags] requests                pending friend requests
//	parley [flags] add NAME [NOTE]         send a friend request
//	parley [flags] accept NAME             accept a friend request
//	parley [flags] groups                  your groups
//	parley [flags] group-create NAME [USER...]
//
// Flags: --addr (or PARLEY_ADDR, default 127.0.0.1:7070), --config (or
// PARLEY_CONFIG, default the user config dir's parley/config.json, mode
// 0600, which keeps the resume token), --json (machine-readable output).
//
// Exit codes: 0 done; 1 usage; 2 the server refused (its error code is
// printed); 3 cannot reach the server; 4 not logged in (log in first).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
)

// Exit codes.
const (
	exitOK       = 0
	exitUsage    = 1
	exitRefused  = 2
	exitNoServer = 3
	exitNoLogin  = 4
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is what parley keeps between runs.
type config struct {
	Addr     string `json:"addr"`
	Username string `json:"username"`
	UserID   int64  `json:"user_id"`
	Token    string `json:"token"`
}

type app struct {
	addr, path string
	json       bool
	out, errw  io.Writer
	cfg        config
}

// failure is an error with its exit code.
type failure struct {
	code int
	err  error
}

func (f *failure) Error() string { return f.err.Error() }

func fail(code int, format string, a ...any) error {
	return &failure{code: code, err: fmt.Errorf(format, a...)}
}

func run(args []string, out, errw io.Writer) int {
	a := &app{out: out, errw: errw}
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(errw)
	fs.StringVar(&a.addr, "addr", envOr("PARLEY_ADDR", "127.0.0.1:7070"), "server address")
	fs.StringVar(&a.path, "config", envOr("PARLEY_CONFIG", defaultConfig()), "config file (keeps the resume token)")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	a.load()
	err := a.dispatch(fs.Args())
	var f *failure
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &f):
		fmt.Fprintln(errw, "parley:", f.err)
		return f.code
	}
	fmt.Fprintln(errw, "parley:", err)
	return exitRefused
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func defaultConfig() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".parley.json"
	}
	return filepath.Join(dir, "parley", "config.json")
}

func (a *app) load() {
	b, err := os.ReadFile(a.path)
	if err == nil {
		_ = json.Unmarshal(b, &a.cfg)
	}
}

func (a *app) save() error {
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(a.cfg, "", "  ")
	return os.WriteFile(a.path, b, 0o600)
}

// dial connects; a failure to reach the server is exit code 3.
func (a *app) dial(opts client.Options) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, a.addr, opts)
	if err != nil {
		return nil, fail(exitNoServer, "cannot reach %s: %v", a.addr, err)
	}
	return c, nil
}

// session logs in with the saved token.
func (a *app) session() (*client.Client, error) {
	if a.cfg.Token == "" {
		return nil, fail(exitNoLogin, "not logged in: run parley login NAME PASSWORD")
	}
	c, err := a.dial(client.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.LoginToken(ctx, a.cfg.Token); err != nil {
		_ = c.Close()
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Code == protocol.CodeTokenInvalid {
			return nil, fail(exitNoLogin, "your session expired or was revoked: run parley login NAME PASSWORD")
		}
		return nil, refused(err)
	}
	return c, nil
}

// refused wraps a server's error as exit code 2.
func refused(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return fail(exitRefused, "%s (%s)", ui.Plain(err), pe.Code)
	}
	return fail(exitRefused, "%v", err)
}

// print writes v as JSON with --json, else text. Protocol values are
// written with their wire field names (group_id, username, ...).
func (a *app) print(v any, text string) {
	if a.json {
		_ = json.NewEncoder(a.out).Encode(wireNames(v))
		return
	}
	fmt.Fprintln(a.out, text)
}

// wireNames re-reads v through its msgpack encoding, so JSON gets the
// protocol's field names; v is returned as is if that fails.
func wireNames(v any) any {
	frame, err := protocol.AppendFrame(nil, protocol.TypeOK, 1, v)
	if err != nil {
		return v
	}
	var out any
	if err := protocol.DecodeBody(frame[protocol.PrefixSize:], &out); err != nil {
		return v
	}
	return out
}

func need(args []string, n int, usage string) error {
	if len(args) < n {
		return fail(exitUsage, "usage: parley %s", usage)
	}
	return nil
}

func (a *app) dispatch(args []string) error {
	if len(args) == 0 {
		return a.interactive()
	}
	cmd, args := args[0], args[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	switch cmd {
	case "register", "login":
		if err := need(args, 2, cmd+" NAME PASSWORD"); err != nil {
			return err
		}
		c, err := a.dial(client.Options{})
		if err != nil {
			return err
		}
		defer c.Close()
		var ok protocol.LoginOK
		if cmd == "register" {
			ok, err = c.Register(ctx, args[0], args[1])
		} else {
			ok, err = c.Login(ctx, args[0], args[1])
		}
		if err != nil {
			return refused(err)
		}
		a.cfg = config{Addr: a.addr, Username: ok.Username, UserID: ok.UserID, Token: ok.Token}
		if err := a.save(); err != nil {
			return err
		}
		a.print(map[string]any{"user_id": ok.UserID, "username": ok.Username}, fmt.Sprintf("logged in as %s (id %d)", ok.Username, ok.UserID))
		return nil
	}
	usage := map[string][2]any{
		"send": {2, "send NAME|#GROUP TEXT"}, "history": {1, "history NAME|#GROUP [N]"},
		"friends": {0, "friends"}, "requests": {0, "requests"}, "add": {1, "add NAME [NOTE]"},
		"accept": {1, "accept NAME"}, "groups": {0, "groups"}, "group-create": {1, "group-create NAME [USER...]"},
	}
	u, ok := usage[cmd]
	if !ok {
		return fail(exitUsage, "unknown command %q (register, login, send, history, friends, requests, add, accept, groups, group-create)", cmd)
	}
	if err := need(args, u[0].(int), u[1].(string)); err != nil {
		return err
	}
	c, err := a.session()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := a.command(ctx, c, cmd, args); err != nil {
		var f *failure
		if errors.As(err, &f) {
			return err
		}
		return refused(err)
	}
	return nil
}

// target resolves NAME (a user) or #GROUP (a group id or name) to a
// conversation.
func (a *app) target(ctx context.Context, c *client.Client, s string) (conv string, user, group int64, err error) {
	if g, ok := strings.CutPrefix(s, "#"); ok {
		if id, err := strconv.ParseInt(g, 10, 64); err == nil {
			return protocol.GroupConv(id), 0, id, nil
		}
		gs, err := c.Groups(ctx)
		if err != nil {
			return "", 0, 0, err
		}
		for _, x := range gs {
			if strings.EqualFold(x.Name, g) {
				return protocol.GroupConv(x.GroupID), 0, x.GroupID, nil
			}
		}
		return "", 0, 0, fail(exitRefused, "you are in no group named %q", g)
	}
	id, err := lookup(ctx, c, s)
	if err != nil {
		return "", 0, 0, err
	}
	return protocol.DirectConv(c.UserID(), id), id, 0, nil
}

func lookup(ctx context.Context, c *client.Client, name string) (int64, error) {
	page, err := c.SearchUsers(ctx, name, "", 5)
	if err != nil {
		return 0, err
	}
	for _, u := range page.Users {
		if strings.EqualFold(u.Username, name) {
			return u.UserID, nil
		}
	}
	return 0, fail(exitRefused, "no user named %q", name)
}

func (a *app) command(ctx context.Context, c *client.Client, cmd string, args []string) error {
	switch cmd {
	case "send":
		_, user, group, err := a.target(ctx, c, args[0])
		if err != nil {
			return err
		}
		text := []byte(strings.Join(args[1:], " "))
		var ack protocol.SendAck
		if group != 0 {
			ack, err = c.SendGroup(ctx, group, 0, text)
		} else {
			ack, err = c.Send(ctx, user, 0, text)
		}
		if err != nil {
			return err
		}
		a.print(ack, fmt.Sprintf("sent (#%d in %s)", ack.Seq, ack.Conv))
	case "history":
		conv, _, _, err := a.target(ctx, c, args[0])
		if err != nil {
			return err
		}
		n := 20
		if len(args) > 1 {
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return fail(exitUsage, "usage: parley history NAME|#GROUP [N]")
			}
		}
		res, err := c.History(ctx, conv, 0, uint32(n))
		if err != nil {
			return err
		}
		msgs := res.Messages
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
		if a.json {
			type line struct {
				Seq  uint64 `json:"seq"`
				From int64  `json:"from"`
				Text string `json:"text"`
				Time int64  `json:"time"`
			}
			out := []line{}
			for _, m := range msgs {
				out = append(out, line{m.Seq, m.From, string(m.Body), m.ServerTime})
			}
			return json.NewEncoder(a.out).Encode(out)
		}
		for _, m := range msgs {
			fmt.Fprintf(a.out, "#%d %s %d: %s\n", m.Seq, time.UnixMilli(m.ServerTime).Format("15:04"), m.From, m.Body)
		}
	case "friends":
		fs, err := c.Friends(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, f := range fs {
			state := "offline"
			if f.Online {
				state = "online"
			}
			fmt.Fprintf(&b, "%s\t%s\n", f.Username, state)
		}
		a.print(nonNil(fs), strings.TrimSuffix(b.String(), "\n"))
	case "requests":
		l, err := c.FriendRequests(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, r := range l.Incoming {
			fmt.Fprintf(&b, "from %s: %s\n", r.From.Username, r.Note)
		}
		for _, r := range l.Outgoing {
			fmt.Fprintf(&b, "to %s (waiting)\n", r.To.Username)
		}
		a.print(l, strings.TrimSuffix(b.String(), "\n"))
	case "add":
		id, err := lookup(ctx, c, args[0])
		if err != nil {
			return err
		}
		if err := c.RequestFriend(ctx, id, strings.Join(args[1:], " ")); err != nil {
			return err
		}
		a.print(map[string]any{"requested": args[0]}, "friend request sent to "+args[0])
	case "accept":
		id, err := lookup(ctx, c, args[0])
		if err != nil {
			return err
		}
		if err := c.AnswerFriend(ctx, id, true); err != nil {
			return err
		}
		a.print(map[string]any{"accepted": args[0]}, args[0]+" is now your friend")
	case "groups":
		gs, err := c.Groups(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, g := range gs {
			fmt.Fprintf(&b, "#%d %s (%d members)\n", g.GroupID, g.Name, g.Members)
		}
		a.print(nonNil(gs), strings.TrimSuffix(b.String(), "\n"))
	case "group-create":
		var ids []int64
		for _, n := range args[1:] {
			id, err := lookup(ctx, c, n)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		g, err := c.CreateGroup(ctx, args[0], false, ids...)
		if err != nil {
			return err
		}
		a.print(g, fmt.Sprintf("group #%d %s created", g.GroupID, g.Name))
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// interactive runs the full-screen chat.
func (a *app) interactive() error {
	c, err := a.dial(client.Options{Reconnect: true, SyncOnLogin: true})
	if err != nil {
		return err
	}
	defer c.Close()
	m := ui.New(c)
	p := tea.NewProgram(m, tea.WithAltScreen())
	ui.Pump(p, c)
	_, err = p.Run()
	return err
}
