package server

import (
	"fmt"
	"testing"
)

// knownAddrs keeps an account's last knownPerAccount addresses, most
// recent first, and tells accounts and addresses apart.
func TestKnownAddrs(t *testing.T) {
	k := newKnownAddrs()
	if k.has("alice", "10.0.0.1") {
		t.Fatal("an empty table knows an address")
	}
	k.add("alice", "10.0.0.1")
	k.add("alice", "10.0.0.1")
	if !k.has("alice", "10.0.0.1") || k.has("alice", "10.0.0.2") || k.has("bob", "10.0.0.1") {
		t.Fatal("one address: wrong answers")
	}
	for i := 2; i <= knownPerAccount; i++ {
		k.add("alice", fmt.Sprintf("10.0.0.%d", i))
	}
	k.add("alice", "10.0.0.1") // most recent again
	k.add("alice", "10.0.0.9") // the oldest, 10.0.0.2, goes
	for i := 1; i <= 9; i++ {
		if want := i != 2; k.has("alice", fmt.Sprintf("10.0.0.%d", i)) != want {
			t.Errorf("10.0.0.%d known: %v, want %v", i, !want, want)
		}
	}
	if k.has("bob", "10.0.0.9") {
		t.Error("bob knows alice's address")
	}
}

// The table holds at most maxLimiterKeys accounts.
func TestKnownAddrsBounded(t *testing.T) {
	k := newKnownAddrs()
	for i := range maxLimiterKeys + 100 {
		name := fmt.Sprint("u", i)
		k.add(name, "10.0.0.1")
		if i%2 == 0 {
			k.add(name, "10.0.0.2")
		}
	}
	if n := len(k.one) + len(k.more); n > maxLimiterKeys {
		t.Fatalf("%d accounts kept, want at most %d", n, maxLimiterKeys)
	}
	if !k.has(fmt.Sprint("u", maxLimiterKeys+99), "10.0.0.1") {
		t.Error("the newest account was not kept")
	}
}
