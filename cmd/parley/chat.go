package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
)

// chat runs the full-screen chat. With a saved session of this server it
// starts at once, offline if need be, from the cached conversations and
// the outgoing queue, and logs in in the background; otherwise it shows
// the login screen, and keeps the session of every login it makes.
func (a *app) chat() error {
	in, okIn := a.in.(*os.File)
	out, okOut := a.out.(*os.File)
	if !okIn || !okOut || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return failf(exitUsage, "the chat screen needs a terminal; scripts use the one-shot commands (parley help)")
	}
	cfg := ui.Config{
		Addr: a.addr,
		Dir:  filepath.Dir(a.path),
		Saved: func(ok protocol.LoginOK) error {
			return saveConfig(a.path, sessionOf(a.addr, ok))
		},
	}
	if !a.quiet {
		cfg.Title = true
		cfg.Bell = func() { _, _ = out.Write([]byte("\a")) }
	}
	if a.cfg.Addr == "" || a.cfg.Addr == a.addr {
		cfg.Username = a.cfg.Username
	}
	opts := a.secure(client.Options{Device: "parley", Reconnect: true, SyncOnLogin: true, DeliveryReceipts: true})
	var c *client.Client
	var err error
	if cfg.Username != "" && a.cfg.Token != "" && a.cfg.UserID != 0 {
		c, err = client.Resume(a.addr, a.cfg.Token, opts)
		cfg.Resumed, cfg.UserID = true, a.cfg.UserID
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		c, err = a.dial(ctx, opts)
		cancel()
	}
	if err != nil {
		return err
	}
	defer c.Close()
	m := ui.New(c, cfg)
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithInput(ui.WholeRunes(in)), tea.WithOutput(out))
	ui.Pump(p, c)
	_, err = p.Run()
	_ = m.Close()
	if err != nil {
		return failf(exitUsage, "the screen failed: %v", err)
	}
	if err := m.Locked(); err != nil {
		return failf(exitConfig, "%v and holds its outgoing queue: quit that one first", err)
	}
	if n := m.Queued(); n > 0 {
		fmt.Fprintf(a.errw, "parley: %d message(s) not sent yet, kept in the outgoing queue: they go out the next time you start parley\n", n)
	}
	return nil
}
