package pebble

import (
	"context"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/storetest"
)

// Acks cost no commit of their own while a batch may still come to carry
// them, are seen by reads at once, and are durable after Close.
func TestAckCoalesced(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, AckDelay: time.Hour})
	ctx := context.Background()
	const convs = 50
	for c := range convs {
		peer := int64(c) + 2
		for i := range 3 {
			m := &protocol.Message{MsgID: int64(c*10 + i + 1), Conv: protocol.DirectConv(1, peer), From: 1, To: peer, Body: []byte("hi"), ServerTime: int64(c*10 + i)}
			if _, _, err := s.Append(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.IndexFlush(ctx); err != nil { // the text index writes after the appends
		t.Fatal(err)
	}
	wal := s.db.Metrics().WAL.BytesWritten
	for c := range convs {
		peer := int64(c) + 2
		for seq := range uint64(3) {
			if err := s.Ack(ctx, peer, protocol.DirectConv(1, peer), seq+1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := s.db.Metrics().WAL.BytesWritten; got != wal {
		t.Errorf("Acks wrote %d WAL bytes before any batch", got-wal)
	}
	for c := range convs {
		peer := int64(c) + 2
		cs, err := s.Conversations(ctx, peer, 10)
		if err != nil || len(cs) != 1 || cs[0].AckSeq != 3 || cs[0].Unread != 0 {
			t.Fatalf("peer %d sees %+v, %v; want ack 3 unread 0", peer, cs, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	for c := range convs {
		peer := int64(c) + 2
		cs, err := s.Conversations(ctx, peer, 10)
		if err != nil || len(cs) != 1 || cs[0].AckSeq != 3 {
			t.Fatalf("after reopen peer %d sees %+v, %v; want ack 3", peer, cs, err)
		}
	}
}

// A pending Ack is written by the timer when no batch comes.
func TestAckTimer(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir(), AckDelay: 5 * time.Millisecond})
	ctx := context.Background()
	m := &protocol.Message{MsgID: 1, Conv: protocol.DirectConv(1, 2), From: 1, To: 2, Body: []byte("hi"), ServerTime: 1}
	if _, _, err := s.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, 2, m.Conv, 1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.cursors.get(2, m.Conv) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("pending Ack never written")
		}
		time.Sleep(time.Millisecond)
	}
	v, found, err := getFrom(s.db, cursorKey(2, m.Conv))
	if err != nil || !found {
		t.Fatalf("cursor row: %v %v", found, err)
	}
	if row, _ := parseCursor(v); row.ack != 1 {
		t.Errorf("stored ack %d, want 1", row.ack)
	}
}

// Delivery cursors moved just before Close are written by it.
func TestDeliveredSurvivesClose(t *testing.T) {
	dir := t.TempDir()
	storetest.DeliveredSurvivesClose(t, open(t, Config{Dir: dir}), func() storage.Store { return open(t, Config{Dir: dir}) })
}
