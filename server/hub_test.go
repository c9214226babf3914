package server

import (
	"slices"
	"testing"
)

// The hub keeps every session of a user through logins and logouts in any
// order, and says which login was the first and which logout the last.
func TestHubSessionsOfAUser(t *testing.T) {
	h := newHub()
	a, b, c := &session{id: 1}, &session{id: 2}, &session{id: 3}
	const u = 42
	has := func(want ...*session) {
		t.Helper()
		got := h.sessionsOf(nil, u)
		if len(got) != len(want) || h.online(u) != (len(want) > 0) {
			t.Fatalf("sessions %v (online %v), want %v", got, h.online(u), want)
		}
		for _, s := range want {
			if !slices.Contains(got, s) {
				t.Fatalf("sessions %v, want %v", got, want)
			}
		}
	}
	has()
	if !h.login(u, a) {
		t.Fatal("the first login is not the first")
	}
	if h.login(u, b) || h.login(u, c) {
		t.Fatal("a second login is the first")
	}
	has(a, b, c)
	if h.logout(u, b) {
		t.Fatal("a logout of three is the last")
	}
	has(a, c)
	if h.logout(u, a) {
		t.Fatal("a logout of two is the last")
	}
	has(c)
	if h.logout(u, a) {
		t.Fatal("a session not in the hub logged out the last one")
	}
	has(c)
	if h.login(u, a) {
		t.Fatal("a second login is the first")
	}
	has(a, c)
	if h.logout(u, c) || !h.logout(u, a) {
		t.Fatal("the last logout is not the last")
	}
	has()
	if !h.login(u, b) {
		t.Fatal("a login after the last logout is not the first")
	}
	has(b)
	if h.online(u + hubShards) {
		t.Fatal("another user of the shard is online")
	}
}

// The session cap counts sessions and places held.
func TestHubReserveCountsSessions(t *testing.T) {
	h := newHub()
	const u = 7
	for i := range 3 {
		if !h.reserve(u, 3) {
			t.Fatalf("place %d refused", i)
		}
		h.login(u, &session{id: uint64(i)})
	}
	if h.reserve(u, 3) {
		t.Fatal("a fourth place under a cap of 3")
	}
}
