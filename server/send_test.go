package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// sendBurst writes n Sends to peer in one write and returns their request
// ids, in order.
func (r *raw) sendBurst(peer int64, prefix string, n int) []uint32 {
	r.t.Helper()
	var buf []byte
	ids := make([]uint32, n)
	for i := range ids {
		r.reqID++
		ids[i] = r.reqID
		buf = append(buf, protocol.MustFrame(protocol.TypeSend, r.reqID, &protocol.Send{
			ClientMsgID: fmt.Sprintf("%s-%d", prefix, i), To: peer, Body: fmt.Appendf(nil, "%s %d", prefix, i),
		})...)
	}
	r.sendBytes(buf)
	return ids
}

// TestPipelinedSends: a burst of Sends with a Sync and a Conversations
// behind it, all in one write. The Sends get seqs in the order sent, and
// the reads run after every Send is answered and see every message.
func TestPipelinedSends(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	if a.SendWindow != 256 {
		t.Errorf("LoginOK.send_window = %d, want the default 256", a.SendWindow)
	}
	if a.MaxMessage != 16<<10 {
		t.Errorf("LoginOK.max_message = %d, want the default 16384", a.MaxMessage)
	}
	conv := protocol.DirectConv(a.UserID, b.UserID)
	const n = 40
	ids := alice.sendBurst(b.UserID, "p", n)
	syncID := alice.send(protocol.TypeSync, &protocol.Sync{Conv: conv})
	convsID := alice.send(protocol.TypeConversations, &protocol.Conversations{})

	seqOf := map[uint32]uint64{}
	var sync protocol.SyncResult
	var convs protocol.ConversationList
	for len(seqOf) < n || sync.Conv == "" || convs.Conversations == nil {
		f, err := alice.next(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d SendAcks: %v", len(seqOf), err)
		}
		switch {
		case f.h.Type == protocol.TypeSendAck:
			var ack protocol.SendAck
			if err := protocol.DecodeBody(f.body, &ack); err != nil {
				t.Fatal(err)
			}
			seqOf[f.h.RequestID] = ack.Seq
		case f.h.Type == protocol.TypeSyncResult && f.h.RequestID == syncID:
			if len(seqOf) < n {
				t.Fatalf("SyncResult after %d of %d SendAcks; a read must follow the Sends before it", len(seqOf), n)
			}
			if err := protocol.DecodeBody(f.body, &sync); err != nil {
				t.Fatal(err)
			}
		case f.h.Type == protocol.TypeConversationList && f.h.RequestID == convsID:
			if sync.Conv == "" {
				t.Fatal("ConversationList before the SyncResult of the request before it")
			}
			if err := protocol.DecodeBody(f.body, &convs); err != nil {
				t.Fatal(err)
			}
		default:
			var e protocol.Error
			_ = protocol.DecodeBody(f.body, &e)
			t.Fatalf("unexpected %s for request %d: %+v", f.h.Type, f.h.RequestID, e)
		}
	}
	for i, id := range ids {
		if seqOf[id] != uint64(i+1) {
			t.Errorf("Send %d (request %d) got seq %d, want %d: seqs follow the order sent", i, id, seqOf[id], i+1)
		}
	}
	if len(sync.Messages) != n || sync.LastSeq != n {
		t.Errorf("Sync after the Sends: %d messages, last_seq %d; want %d", len(sync.Messages), sync.LastSeq, n)
	}
	for i, m := range sync.Messages {
		if want := fmt.Sprintf("p %d", i); string(m.Body) != want || m.Seq != uint64(i+1) {
			t.Errorf("message %d: seq %d %q, want seq %d %q", i, m.Seq, m.Body, i+1, want)
		}
	}
	if len(convs.Conversations) != 1 || convs.Conversations[0].LastSeq != n {
		t.Errorf("Conversations after the Sends: %+v", convs.Conversations)
	}
	for i := range n {
		if m := bob.expectPush(); m.Seq != uint64(i+1) {
			t.Fatalf("push %d: seq %d", i, m.Seq)
		}
	}
}

// TestSendWindow: past MaxPendingSends unanswered Sends a Send gets BUSY and
// is not stored; the window is told in LoginOK.
func TestSendWindow(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.MaxPendingSends = 1 })
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob"))
	if a.SendWindow != 1 {
		t.Fatalf("LoginOK.send_window = %d, want 1", a.SendWindow)
	}
	const n = 50
	ids := alice.sendBurst(b.UserID, "w", n)
	acked := map[uint32]uint64{}
	busy := 0
	for range n {
		f, err := alice.next(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(acked)+busy, err)
		}
		switch f.h.Type {
		case protocol.TypeSendAck:
			var ack protocol.SendAck
			_ = protocol.DecodeBody(f.body, &ack)
			acked[f.h.RequestID] = ack.Seq
		case protocol.TypeError:
			var e protocol.Error
			_ = protocol.DecodeBody(f.body, &e)
			if e.Code != protocol.CodeBusy {
				t.Fatalf("error %s %q, want BUSY", e.Code, e.Message)
			}
			busy++
		default:
			t.Fatalf("unexpected %s", f.h.Type)
		}
	}
	if busy == 0 {
		t.Fatalf("%d Sends in one burst with a window of 1: none BUSY", n)
	}
	// The Sends that were taken were stored in order, with no holes.
	var next uint64 = 1
	for _, id := range ids {
		if seq, ok := acked[id]; ok {
			if seq != next {
				t.Errorf("request %d: seq %d, want %d", id, seq, next)
			}
			next++
		}
	}
	id := alice.send(protocol.TypeSync, &protocol.Sync{Conv: protocol.DirectConv(a.UserID, b.UserID)})
	var sync protocol.SyncResult
	alice.expect(protocol.TypeSyncResult, id, &sync)
	if int(sync.LastSeq) != len(acked) {
		t.Errorf("stored %d messages, acked %d; BUSY ones must not be stored", sync.LastSeq, len(acked))
	}
}
