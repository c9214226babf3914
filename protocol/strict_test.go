package protocol

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func mp(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A body must be a map, and an integer must fit its field: everything else
// is ErrBadBody, never a truncated or wrapped value.
func TestStrictBodies(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  Type
		body any
		ok   bool
	}{
		{"register as array", TypeRegister, []any{"mallory", "password1", ""}, false},
		{"register as map", TypeRegister, map[string]any{"username": "mallory", "password": "password1"}, true},
		{"body nil", TypeLogout, nil, false},
		{"body an integer", TypePing, 1, false},
		{"content_type 70000", TypeSend, map[string]any{"client_msg_id": "c", "to": 2, "content_type": 70000}, false},
		{"content_type 65535", TypeSend, map[string]any{"client_msg_id": "c", "to": 2, "content_type": 65535}, true},
		{"content_type -1", TypeSend, map[string]any{"client_msg_id": "c", "to": 2, "content_type": -1}, false},
		{"content_type a string", TypeSend, map[string]any{"client_msg_id": "c", "to": 2, "content_type": "1"}, false},
		{"to a float", TypeSend, map[string]any{"client_msg_id": "c", "to": 2.0}, false},
		{"to nil", TypeSend, map[string]any{"client_msg_id": "c", "to": nil, "group_id": 7}, true},
		{"negative last_ack_id", TypeSync, map[string]any{"conv": "u1:2", "last_ack_id": int64(-1)}, false},
		{"largest last_ack_id", TypeSync, map[string]any{"conv": "u1:2", "last_ack_id": uint64(1<<64 - 1)}, true},
		{"limit 2^32", TypeSync, map[string]any{"conv": "u1:2", "limit": int64(1) << 32}, false},
		{"negative seq in a list", TypeDeleteHistory, map[string]any{"conv": "u1:2", "seqs": []any{1, -1}}, false},
		{"seqs a map", TypeDeleteHistory, map[string]any{"conv": "u1:2", "seqs": map[string]any{"a": 1}}, false},
		{"int64 members at the edges", TypeGroupCreate, map[string]any{"name": "g", "members": []any{int64(-1 << 63), int64(1<<63 - 1)}}, true},
		{"member above int64", TypeGroupCreate, map[string]any{"name": "g", "members": []any{uint64(1 << 63)}}, false},
		{"unknown keys of any type", TypeAck, map[string]any{"conv": "u1:2", "seq": 3, "later": []any{-1, "x", map[string]any{}}}, true},
		{"nested message as array", TypeConversationList, map[string]any{"conversations": []any{[]any{"u1:2", 1, 1, 0}}}, false},
		{"kick reason 256", TypeKick, map[string]any{"reason": 256}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DecodeBody(mp(t, tc.body), NewBody(tc.typ))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadBody) {
				t.Fatalf("error %v, want ErrBadBody", err)
			}
		})
	}
}
