// Command parley is Parley's terminal chat client: a full-screen chat,
// and one-shot commands for scripts.
//
//	parley [flags]                  the full-screen chat (also: parley chat)
//	parley [flags] COMMAND ARGS...  one command; `parley help` lists them
//
// Flags may come anywhere before a "--":
//
//	--addr HOST:PORT  the server (PARLEY_ADDR; default 127.0.0.1:7070)
//	--config FILE     where the session is kept (PARLEY_CONFIG; default
//	                  parley/config.json in the user's config directory, mode 0600)
//	--plaintext       do not encrypt (a server behind a TLS proxy, or an old one);
//	                  by default parley encrypts and pins the server's key on first
//	                  use in known_servers beside the config file, refusing a changed key
//	--json            print results as JSON on stdout, and failures as JSON on stderr
//	--open            with `group create`: anyone may join
//	--quiet           the chat rings no bell and keeps no unread count in the title
//	--timeout D       of each command (default 15s)
//	--version         print the version and exit
//
// register and login keep the session's resume token in the config file;
// every other command logs in with it.
//
// Exit codes:
//
//	0  done
//	1  usage: an unknown command, wrong arguments or flags; or no terminal for the chat
//	2  the server refused (its error code is printed, and is "code" with --json),
//	   or a user or group named does not exist
//	3  cannot connect: the server is unreachable, or the connection failed before it answered
//	4  not logged in: no saved session, or the server no longer accepts it (TOKEN_INVALID)
//	5  the config file cannot be read or written, or another parley runs the chat of the account
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/internal/version"
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
	exitConfig   = 5
)

const defaultAddr = "127.0.0.1:7070"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app is one run of parley.
type app struct {
	addr, path string
	json, open bool
	quiet      bool // the chat: no bell, no unread count in the title
	plaintext  bool // no Noise
	timeout    time.Duration
	cfg        config
	in         io.Reader
	out, errw  io.Writer
}

// exitError is a failure with its exit code and, for a server's refusal,
// its wire error code.
type exitError struct {
	code int
	msg  string
	wire string // e.g. NOT_FRIENDS; empty if none
}

func (e *exitError) Error() string { return e.msg }

func failf(code int, format string, a ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

func run(args []string, in io.Reader, out, errw io.Writer) int {
	if version.Requested(args) {
		fmt.Fprintln(out, version.String("parley"))
		return exitOK
	}
	a := &app{in: in, out: out, errw: errw}
	pos, err := a.parseFlags(args)
	if err != nil {
		return a.report(err)
	}
	if a.cfg, err = loadConfig(a.path); err != nil {
		return a.report(&exitError{code: exitConfig, msg: "cannot read the config: " + err.Error()})
	}
	return a.report(a.dispatch(pos))
}

// parseFlags reads the flags wherever they are before a "--", and returns
// the other arguments.
func (a *app) parseFlags(args []string) ([]string, error) {
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.addr, "addr", envOr("PARLEY_ADDR", defaultAddr), "")
	fs.StringVar(&a.path, "config", envOr("PARLEY_CONFIG", defaultConfigPath()), "")
	fs.BoolVar(&a.json, "json", false, "")
	fs.BoolVar(&a.open, "open", false, "")
	fs.BoolVar(&a.quiet, "quiet", false, "")
	fs.BoolVar(&a.plaintext, "plaintext", false, "")
	fs.DurationVar(&a.timeout, "timeout", 15*time.Second, "")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return []string{"help"}, nil
			}
			return nil, failf(exitUsage, "%v (parley help lists the flags)", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if a.timeout <= 0 {
		return nil, failf(exitUsage, "--timeout must be above 0")
	}
	return pos, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// classify gives err its exit code.
func (a *app) classify(err error) *exitError {
	var xe *exitError
	var pe *protocol.Error
	var nu *ui.NoUserError
	switch {
	case errors.As(err, &xe):
		return xe
	case errors.As(err, &pe):
		if pe.Code == protocol.CodeTokenInvalid || pe.Code == protocol.CodeNotLoggedIn {
			return &exitError{code: exitNoLogin, wire: pe.Code.String(),
				msg: "the saved session is no longer valid (it expired, or a logout revoked it): log in again with parley login NAME"}
		}
		msg := ui.Plain(err)
		if pe.Code == protocol.CodeNotFriends {
			msg = "you can only message friends: parley add NAME, and wait until they accept"
		}
		return &exitError{code: exitRefused, msg: msg, wire: pe.Code.String()}
	case errors.As(err, &nu):
		return &exitError{code: exitRefused, msg: nu.Error(), wire: protocol.CodeNoSuchUser.String()}
	case errors.Is(err, client.ErrOptions):
		return &exitError{code: exitUsage, msg: err.Error()}
	}
	return &exitError{code: exitNoServer, msg: "cannot talk to the server at " + a.addr + ": " + ui.Plain(err)}
}

// report prints a failure and returns the exit code.
func (a *app) report(err error) int {
	if err == nil {
		return exitOK
	}
	e := a.classify(err)
	if a.json {
		enc := json.NewEncoder(a.errw)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(struct {
			Error string `json:"error"`
			Code  string `json:"code,omitempty"`
			Exit  int    `json:"exit"`
		}{e.msg, e.wire, e.code})
		return e.code
	}
	msg := e.msg
	if e.wire != "" {
		msg += " (" + e.wire + ")"
	}
	fmt.Fprintln(a.errw, "parley: "+msg)
	return e.code
}

// emit prints a result: v as JSON with --json, else the lines of text.
func (a *app) emit(v any, text ...string) error {
	if a.json {
		enc := json.NewEncoder(a.out)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	for _, l := range text {
		if _, err := fmt.Fprintln(a.out, l); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) dispatch(args []string) error {
	if len(args) == 0 {
		return a.chat()
	}
	name, rest := args[0], args[1:]
	if name == "group" {
		if len(rest) == 0 {
			return failf(exitUsage, "usage: parley group create|join|invite|leave|members|send ... (parley help)")
		}
		name, rest = "group "+rest[0], rest[1:]
	}
	cmd, ok := commandNamed(name)
	if !ok {
		return failf(exitUsage, "no command %q: parley help lists them", name)
	}
	if len(rest) < cmd.min || (cmd.max >= 0 && len(rest) > cmd.max) {
		return failf(exitUsage, "usage: parley %s %s", cmd.name, cmd.args)
	}
	if cmd.check != nil {
		if err := cmd.check(rest); err != nil {
			return err
		}
	}
	return cmd.run(a, rest)
}

// usage is the help text.
func (a *app) usage() string {
	var b strings.Builder
	b.WriteString("parley: Parley's terminal chat client\n\n")
	fmt.Fprintf(&b, "  parley %-35s %s\n", "[flags]", "the full-screen chat")
	for _, c := range commandList() {
		fmt.Fprintf(&b, "  parley %-35s %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	b.WriteString(`
A NAME is a username; a GROUP is #ID, or #NAME of a group you are in. TEXT "-" reads stdin.

flags (anywhere before --):
  --addr HOST:PORT   the server (PARLEY_ADDR; default 127.0.0.1:7070)
  --config FILE      the session file (PARLEY_CONFIG; default ` + defaultConfigPath() + `)
  --json             results as JSON on stdout, failures as JSON on stderr
  --open             with group create: anyone may join
  --quiet            the chat rings no bell and keeps no unread count in the title
  --timeout D        of each command (default 15s)

exit codes: 0 done; 1 usage; 2 the server refused (or no such user or group);
3 cannot connect; 4 not logged in (or the session expired); 5 the config file failed
`)
	return b.String()
}
