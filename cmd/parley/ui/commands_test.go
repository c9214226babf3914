package ui

import (
	"errors"
	"strings"
	"testing"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		line, name, args, text string
		num                    int64
		err                    string
	}{
		{line: "/add bob hello   there", name: "add", args: "bob hello there", text: "hello   there"},
		{line: "/ADD bob", name: "add", args: "bob"},
		{line: "/accept carol", name: "accept", args: "carol"},
		{line: "/group new climbing bob carol", name: "group new", args: "climbing bob carol", text: "bob carol"},
		{line: "/group open lobby", name: "group open", args: "lobby"},
		{line: "/join 42", name: "join", args: "42", num: 42},
		{line: "/join #42", name: "join", args: "#42", num: 42},
		{line: "/join lobby", name: "join", args: "lobby"},
		{line: "/join cooking  club", name: "join", args: "cooking club", text: "club"},
		{line: "/list", name: "list"},
		{line: "/list cl", name: "list", args: "cl"},
		{line: "/open", name: "open"},
		{line: "/leave", name: "leave"},
		{line: "/history", name: "history"},
		{line: "/delete", name: "delete"},
		{line: "/delete 5", name: "delete", args: "5", num: 5},
		{line: "/invite bob carol", name: "invite", args: "bob carol", text: "carol"},
		{line: "  /help  ", name: "help"},

		{line: "/add", err: "usage: /add NAME [NOTE]"},
		{line: "/accept", err: "usage: /accept NAME"},
		{line: "/accept bob carol", err: "usage: /accept NAME"},
		{line: "/group", err: "usage: /group new NAME [USER...], or /group open NAME"},
		{line: "/group rename x", err: "usage: /group new"},
		{line: "/group new", err: "usage: /group new NAME [USER...]"},
		{line: "/join", err: "usage: /join NAME|#ID"},
		{line: "/join -3", err: "a group id is above 0"},
		{line: "/close now", err: "usage: /close"},
		{line: "/delete some", err: "usage: /delete N|all"},
		{line: "/leave now", err: "usage: /leave"},
		{line: "/frobnicate", err: "no command /frobnicate: /help lists them"},
		{line: "/", err: "an empty command"},
	} {
		got, err := Parse(c.line)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.line, err, c.err)
			}
			continue
		}
		if err != nil || got.Name != c.name || strings.Join(got.Args, " ") != c.args || got.Text != c.text || got.Num != c.num {
			t.Errorf("%q: %+v %v", c.line, got, err)
		}
	}
}

// Every command has a help line, and parses with its own usage.
func TestHelpCoversCommands(t *testing.T) {
	help := strings.Join(Help(), "\n")
	for _, s := range specs {
		if !strings.Contains(help, "/"+strings.TrimSpace(s.name+" "+s.args)) {
			t.Errorf("help lacks /%s", s.name)
		}
	}
}

func TestPlain(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&protocol.Error{Code: protocol.CodeNotFriends}, "you can only message friends: /add NAME, and wait until they accept"},
		{&client.SendError{Err: &protocol.Error{Code: protocol.CodeMessageTooLong}}, "the message is too long"},
		{&protocol.Error{Code: protocol.CodeTokenInvalid}, "the saved session has expired or was revoked: log in again"},
		{&protocol.Error{Code: 4999, Message: "nope"}, "the server refused: nope"},
		{&protocol.Error{Code: 4999}, "the server refused (Code(4999))"},
		{&client.KickError{Reason: protocol.KickSessionRevoked}, "this session was revoked: log in again"},
		{client.ErrTimeout, "the server did not answer in time"},
		{&client.SendError{Err: client.ErrDisconnected}, "the connection dropped before the server answered"},
		{client.ErrClosed, "the connection is closed"},
		{&NoUserError{Name: "zed"}, `no user named "zed"`},
		{errors.New("something else"), "something else"},
	} {
		if got := Plain(c.err); got != c.want {
			t.Errorf("Plain(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	for code := range codeWords {
		if Plain(&protocol.Error{Code: code}) == "" {
			t.Errorf("%s has no words", code)
		}
	}
}

func TestRename(t *testing.T) {
	if got := rename("user-1 and user-12 and user-1.", "user-1", "bob"); got != "bob and user-12 and bob." {
		t.Fatal(got)
	}
}
