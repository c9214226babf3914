package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// TestEveryClientTypeHasAHandler: a frame type clients may send is either
// answered on the event loop (Ping, the Noise frames) or registered in the table, and the
// table's reply types are frames the server sends.
func TestEveryClientTypeHasAHandler(t *testing.T) {
	for typ := protocol.Type(0); typ < 0x200; typ++ {
		if !typ.FromClient() || typ == protocol.TypePing || connectionFrame(typ) {
			continue
		}
		h := handlers[typ]
		if h == nil {
			t.Errorf("%s: no handler registered", typ)
			continue
		}
		if !h.reply.Known() || h.reply.FromClient() {
			t.Errorf("%s: reply type %s is not a server frame", typ, h.reply)
		}
		if (typ == protocol.TypeRegister || typ == protocol.TypeLogin) != (h.auth == anonymous) {
			t.Errorf("%s: auth need %d", typ, h.auth)
		}
	}
	for typ := range handlers {
		if !typ.FromClient() {
			t.Errorf("%s registered but clients may not send it", typ)
		}
	}
}

// TestFailMapsErrors: the one error-to-frame function.
func TestFailMapsErrors(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		err   error
		code  protocol.Code
		until int64
	}{
		{refuse(protocol.CodeBadMessage, "x"), protocol.CodeBadMessage, 0},
		{fmt.Errorf("wrapped: %w", refuseCode(protocol.CodeNotMember)), protocol.CodeNotMember, 0},
		{&protoError{code: protocol.CodeBanned, msg: "banned", until: 42}, protocol.CodeBanned, 42},
		{fmt.Errorf("pebble: %w", storage.ErrGroupFull), protocol.CodeGroupFull, 0},
		{storage.ErrNotMember, protocol.CodeNotMember, 0},
		{storage.ErrAlreadyMember, protocol.CodeAlreadyMember, 0},
		{storage.ErrClosed, protocol.CodeShutdown, 0},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), protocol.CodeTimeout, 0},
		{errors.New("disk on fire"), protocol.CodeUnavailable, 0},
	}
	for _, c := range cases {
		out := s.fail(nil, 7, protocol.TypeSend, c.err)
		h, body, _, err := protocol.Decode(out, 0)
		if err != nil || h.Type != protocol.TypeError || h.RequestID != 7 {
			t.Fatalf("%v: frame %+v, %v", c.err, h, err)
		}
		var e protocol.Error
		if err := protocol.DecodeBody(body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Code != c.code || e.Until != c.until || e.Message == "" {
			t.Errorf("%v: got %+v, want code %s until %d", c.err, e, c.code, c.until)
		}
	}
}
