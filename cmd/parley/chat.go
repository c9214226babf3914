package main

import (
	"context"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
)

// chat runs the full-screen chat. It resumes the saved session of this
// server if there is one, and keeps the session of every login it makes.
func (a *app) chat() error {
	in, okIn := a.in.(*os.File)
	out, okOut := a.out.(*os.File)
	if !okIn || !okOut || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
		return failf(exitUsage, "the chat screen needs a terminal; scripts use the one-shot commands (parley help)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	c, err := a.dial(ctx, client.Options{Reconnect: true, SyncOnLogin: true})
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	cfg := ui.Config{
		Addr: a.addr,
		Saved: func(ok protocol.LoginOK) error {
			return saveConfig(a.path, sessionOf(a.addr, ok))
		},
	}
	if a.cfg.Addr == "" || a.cfg.Addr == a.addr {
		cfg.Username, cfg.Token = a.cfg.Username, a.cfg.Token
	}
	p := tea.NewProgram(ui.New(c, cfg), tea.WithAltScreen(), tea.WithInput(in), tea.WithOutput(out))
	ui.Pump(p, c)
	if _, err := p.Run(); err != nil {
		return failf(exitUsage, "the screen failed: %v", err)
	}
	return nil
}
