package ui

import (
	"errors"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// openAccount opens the outgoing queue and the cache of the user logged
// in, once: what a crash or a quit left queued goes out first. If another
// parley holds the account's queue, nothing is opened and the screen
// quits (Locked says why): two copies must not send or rewrite one queue.
func (m *Model) openAccount() {
	if m.cfg.Dir == "" || m.outbox != nil || m.me == 0 {
		return
	}
	ob, err := OpenOutbox(AccountFile(m.cfg.Dir, "outbox", m.cfg.Addr, m.me))
	if errors.Is(err, ErrOutboxLocked) {
		m.locked = err
		m.fail(err.Error())
		return
	}
	if err != nil {
		m.fail("the outgoing queue cannot be read: " + err.Error())
		return
	}
	m.outbox = ob
	for _, q := range ob.Items() {
		m.out = append(m.out, &outgoing{q: q})
		m.ensure(q.Conv)
	}
	m.cachePath = AccountFile(m.cfg.Dir, "cache", m.cfg.Addr, m.me)
	m.loadCache(LoadCache(m.cachePath))
}

// Locked is the *LockedError of an account whose outgoing queue another
// parley holds, or nil. The screen quits at once when it finds one.
func (m *Model) Locked() error { return m.locked }

// Close releases the account's outgoing queue (its lock); it stays on
// disk for the next start.
func (m *Model) Close() error { return m.outbox.Close() }

// quit leaves, unless messages are queued and this is the first Ctrl+C:
// then it says what is still queued and waits for a second one.
func (m *Model) quit() tea.Cmd {
	if n := len(m.out); n > 0 && !m.quitArmed && m.screen == screenChat {
		m.quitArmed = true
		m.fail(fmt.Sprintf("%d message(s) not sent yet (%s) — kept for the next start; Ctrl+C again quits", n, m.queueWords()))
		return nil
	}
	m.saveCache()
	m.quitting = true
	return tea.Quit
}

// queueWords says where the queued messages go: "2 to bob, 1 to #crag".
func (m *Model) queueWords() string {
	var order []string
	count := map[string]int{}
	for _, o := range m.out {
		if count[o.q.Conv] == 0 {
			order = append(order, o.q.Conv)
		}
		count[o.q.Conv]++
	}
	var parts []string
	for _, id := range order {
		parts = append(parts, fmt.Sprintf("%d to %s", count[id], m.title(m.ensure(id))))
	}
	return strings.Join(parts, ", ")
}

// browse moves through the lines entered before: step -1 to older.
func (m *Model) browse(step int) {
	if m.histPos > len(m.hist) || m.histPos < 0 {
		m.histPos = len(m.hist)
	}
	if m.histPos == len(m.hist) {
		m.histDraft = m.input.Value()
	}
	next := m.histPos + step
	if next < 0 || next > len(m.hist) {
		return
	}
	m.histPos = next
	if next == len(m.hist) {
		m.input.SetValue(m.histDraft)
	} else {
		m.input.SetValue(strings.ReplaceAll(m.hist[next], "\n", " "))
	}
	m.input.CursorEnd()
}
