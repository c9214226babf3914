package client

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// State is where a client stands.
type State uint8

// Client states.
const (
	StateConnected    State = iota + 1 // TCP connected, not logged in
	StateLoggedIn                      // logged in; requests go out at once
	StateReconnecting                  // the connection dropped; requests wait for the next login
	StateClosed                        // final; see the EventClosed error
)

var stateNames = [...]string{"", "CONNECTED", "LOGGED_IN", "RECONNECTING", "CLOSED"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// EventType tells what an Event reports.
type EventType uint8

// Event types. The Event fields each one fills are listed.
const (
	EventConnected    EventType = iota + 1 // Addr: a TCP connection is up (Dial, reconnect, redirect)
	EventLoggedIn                          // Addr, UserID, MaxMessage: a (re)login succeeded
	EventDisconnected                      // Addr, Err: the logged-in connection dropped (Err is a *KickError for a kick)
	EventReconnecting                      // Attempt, Delay, Err: waiting Delay before reconnect attempt Attempt (from 1)
	EventRedirected                        // Addr: a login was redirected to Addr
	EventClosed                            // Err: the client is closed for good (ErrClosed after Close)
)

var eventNames = [...]string{"", "CONNECTED", "LOGGED_IN", "DISCONNECTED", "RECONNECTING", "REDIRECTED", "CLOSED"}

func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is a change of the client's connection state, read from Events.
type Event struct {
	Type    EventType
	Addr    string
	UserID  int64
	Err     error
	Attempt int
	Delay   time.Duration
	// MaxMessage is the server's limit on a message body in bytes
	// (LoginOK.max_message); 0 if the server did not tell it.
	MaxMessage int
}

// eventBuffer is the capacity of the Events channel.
const eventBuffer = 64

// emit queues ev without blocking: when the channel is full the oldest
// event is dropped.
func (c *Client) emit(ev Event) {
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("event", "type", ev.Type.String(), "addr", ev.Addr, "err", ev.Err, "attempt", ev.Attempt)
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if !c.evClosed {
		offer(c.events, ev)
	}
}

// offer puts v on ch without blocking, dropping the oldest value when ch
// is full, and reports whether it dropped one. The caller holds evMu, the
// only sender.
func offer[T any](ch chan T, v T) (dropped bool) {
	for {
		select {
		case ch <- v:
			return dropped
		default:
		}
		select {
		case <-ch:
			dropped = true
		default:
		}
	}
}
