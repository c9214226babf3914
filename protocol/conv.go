package protocol

import (
	"strconv"
	"strings"
)

// Conversation ids are strings: "d:<lo>:<hi>" for the direct (1:1)
// conversation of users lo < hi, "g:<group id>" for a group. Both sides of a
// direct conversation use the same id.

// ConvKind tells a direct conversation from a group one.
type ConvKind uint8

// Conversation kinds.
const (
	ConvInvalid ConvKind = iota
	ConvDirect
	ConvGroup
)

// DirectConv returns the id of the conversation between users a and b.
func DirectConv(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	buf := make([]byte, 0, 24)
	buf = append(buf, "d:"...)
	buf = strconv.AppendInt(buf, a, 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, b, 10)
	return string(buf)
}

// GroupConv returns the id of a group's conversation.
func GroupConv(group int64) string {
	return "g:" + strconv.FormatInt(group, 10)
}

// ParsedConv is a conversation id taken apart.
type ParsedConv struct {
	Kind  ConvKind
	A, B  int64 // the two users of a direct conversation, A < B
	Group int64 // the group of a group conversation
}

// ParseConv takes a conversation id apart. It accepts only the canonical form
// (positive ids, no leading zeros, A < B), so one conversation has one id.
func ParseConv(s string) (ParsedConv, bool) {
	switch {
	case strings.HasPrefix(s, "d:"):
		lo, hi, ok := strings.Cut(s[2:], ":")
		if !ok {
			return ParsedConv{}, false
		}
		a, okA := parseID(lo)
		b, okB := parseID(hi)
		if !okA || !okB || a >= b {
			return ParsedConv{}, false
		}
		return ParsedConv{Kind: ConvDirect, A: a, B: b}, true
	case strings.HasPrefix(s, "g:"):
		g, ok := parseID(s[2:])
		if !ok {
			return ParsedConv{}, false
		}
		return ParsedConv{Kind: ConvGroup, Group: g}, true
	}
	return ParsedConv{}, false
}

// Has reports whether user is one of the two users of a direct conversation.
func (p ParsedConv) Has(user int64) bool {
	return p.Kind == ConvDirect && (p.A == user || p.B == user)
}

// DirectOf reports whether conv is a direct conversation of user's.
func DirectOf(user int64, conv string) bool {
	p, ok := ParseConv(conv)
	return ok && p.Has(user)
}

// Peer returns the other user of a direct conversation.
func (p ParsedConv) Peer(user int64) int64 {
	if p.A == user {
		return p.B
	}
	return p.A
}

func parseID(s string) (int64, bool) {
	if s == "" || s[0] == '0' || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v > 0
}
