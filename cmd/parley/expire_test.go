package main

import (
	"strings"
	"testing"
)

// parley expire sets a conversation's timer: history shows the timer
// message, conversations the timer; a bad TIME or one below the server's
// minimum is refused.
func TestExpireCommand(t *testing.T) {
	us := newUsers(t, "alice", "bob")
	alice, bob := us["alice"], us["bob"]
	alice.ok("register", "alice", "alice-password")
	bob.ok("register", "bob", "bob-password")
	alice.ok("add", "bob")
	bob.ok("accept", "alice")

	if out := alice.ok("expire", "bob", "1h"); !strings.Contains(out, "disappearing messages with bob: 1h") {
		t.Fatalf("expire: %q", out)
	}
	alice.ok("send", "bob", "hello")
	var convs []struct {
		Conv  string `json:"conv"`
		Timer uint32 `json:"timer"`
	}
	bob.okJSON(&convs, "conversations")
	if len(convs) != 1 || convs[0].Timer != 3600 {
		t.Fatalf("conversations: %+v", convs)
	}
	if out := bob.ok("history", "alice"); !strings.Contains(out, "alice: ⏱ set disappearing messages to 1h") || !strings.Contains(out, "alice: hello") {
		t.Fatalf("history: %q", out)
	}
	alice.fails(exitUsage, "a timer is off, or a number", "expire", "bob", "soon")
	alice.failsJSON(exitRefused, "BAD_TIMER", "expire", "bob", "2s")
	alice.ok("expire", "bob", "off")
}
