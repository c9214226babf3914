package ui

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
)

// Sender is what Pump feeds: a *tea.Program.
type Sender interface{ Send(tea.Msg) }

// Pump forwards the client's messages, events and notices to the program
// until the client closes.
func Pump(p Sender, c *client.Client) {
	go func() {
		for m := range c.Messages() {
			p.Send(IncomingMsg{M: m})
		}
	}()
	go func() {
		for e := range c.Events() {
			p.Send(EventMsg{E: e})
		}
	}()
	go func() {
		for n := range c.Notices() {
			p.Send(NoticeMsg{N: n})
		}
	}()
}
