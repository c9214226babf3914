package server_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// readerToken is the resume token of the i-th user of the big group test.
func readerToken(i int) string { return fmt.Sprintf("token-of-reader-%04d", i) }

// bigGroup stores n users with resume tokens and a group of them all, owned
// by the first, straight into st, and returns their ids.
func bigGroup(t *testing.T, st servertest.Storage, n int) (ids []int64, group int64) {
	t.Helper()
	store, err := st.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	ids = make([]int64, n)
	eg := newGroup(16)
	for i := range n {
		eg.Go(func() error {
			u, err := store.CreateUser(ctx, fmt.Sprintf("reader%04d", i), []byte("no password"))
			if err != nil {
				return err
			}
			ids[i] = u.ID
			sum := sha256.Sum256([]byte(readerToken(i)))
			return store.CreateToken(ctx, sum[:], u.ID, time.Now().Add(time.Hour))
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	g, err := store.CreateGroup(ctx, ids[0], "everyone", false, ids[1:], n, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ids, g.ID
}

// tokenConn is a connection logged in with a resume token, for use off the
// test goroutine (it returns errors instead of failing the test).
type tokenConn struct {
	c   net.Conn
	buf []byte
	id  uint32
}

func dialToken(addr, token string) (*tokenConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tc := &tokenConn{c: c}
	if _, err := tc.call(protocol.TypeLogin, &protocol.Login{Token: token}, protocol.TypeLoginOK); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// call sends a request and reads frames until its answer, which must be of
// type want; pushes on the way are skipped.
func (tc *tokenConn) call(t protocol.Type, body any, want protocol.Type) ([]byte, error) {
	tc.id++
	_ = tc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.c.Write(protocol.MustFrame(t, tc.id, body)); err != nil {
		return nil, err
	}
	for {
		h, b, err := tc.next()
		if err != nil {
			return nil, err
		}
		if h.RequestID != tc.id {
			continue
		}
		if h.Type != want {
			var e protocol.Error
			_ = protocol.DecodeBody(b, &e)
			return nil, fmt.Errorf("%s answered %s %+v, want %s", t, h.Type, e, want)
		}
		return b, nil
	}
}

func (tc *tokenConn) next() (protocol.Header, []byte, error) {
	for {
		h, body, n, err := protocol.Decode(tc.buf, 0)
		if err == nil {
			b := append([]byte(nil), body...)
			tc.buf = tc.buf[n:]
			return h, b, nil
		}
		if !errors.Is(err, protocol.ErrIncomplete) {
			return h, nil, err
		}
		chunk := make([]byte, 64<<10)
		k, err := tc.c.Read(chunk)
		tc.buf = append(tc.buf, chunk[:k]...)
		if err != nil && k == 0 {
			return h, nil, err
		}
	}
}

// A group of 2,000 members, everyone reading one message: its sender gets
// its read counts in at most ⌈T/ReceiptInterval⌉+2 GroupReadEvents, T being
// how long the reading took, the last one counting all 1,999 readers; the
// other members get no receipt at all. Sent one by one it would be 1,999
// events to each of 2,000 members.
func TestGroupReadReceiptsBounded(t *testing.T) {
	const (
		members  = 2000
		interval = 100 * time.Millisecond
	)
	st := servertest.NewStorage(t)
	t0 := time.Now()
	ids, group := bigGroup(t, st, members)
	t.Logf("stored %d users and their group in %v", members, time.Since(t0).Round(time.Millisecond))
	srv := servertest.StartOn(t, st, func(c *server.Config) {
		c.ReceiptInterval = interval
		c.MaxConns = 4 * members
	})
	conv := protocol.GroupConv(group)
	sender, err := dialToken(srv.Addr(), readerToken(0))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.c.Close()
	bystander, err := dialToken(srv.Addr(), readerToken(1))
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.c.Close()
	if _, err := sender.call(protocol.TypeSend, &protocol.Send{ClientMsgID: "big", GroupID: group, Body: []byte("read me")}, protocol.TypeSendAck); err != nil {
		t.Fatal(err)
	}

	// The sender's and the bystander's receipt traffic.
	type tally struct {
		events, bytes atomic.Int64
		last          atomic.Uint32 // the newest count of seq 1
		other         atomic.Int64  // receipt frames of other kinds
	}
	var sent, seen tally
	watch := func(tc *tokenConn, tl *tally) {
		for {
			h, b, err := tc.next()
			if err != nil {
				return
			}
			switch {
			case h.Type == protocol.TypeGroupReadEvent:
				var ev protocol.GroupReadEvent
				if protocol.DecodeBody(b, &ev) == nil && ev.Conv == conv {
					tl.events.Add(1)
					tl.bytes.Add(int64(protocol.PrefixSize + len(b)))
					for _, r := range ev.Reads {
						if r.Seq == 1 {
							tl.last.Store(r.Count)
						}
					}
				}
			case h.Type >= 0x0090 && h.Type <= 0x00AF:
				tl.other.Add(1)
			}
		}
	}
	_ = sender.c.SetDeadline(time.Time{})
	_ = bystander.c.SetDeadline(time.Time{})
	go watch(sender, &sent)
	go watch(bystander, &seen)

	// Everyone else reads, 200 connections at a time; the bystander last.
	start := time.Now()
	eg := newGroup(200)
	for i := 2; i < members; i++ {
		eg.Go(func() error {
			tc, err := dialToken(srv.Addr(), readerToken(i))
			if err != nil {
				return err
			}
			defer tc.c.Close()
			_, err = tc.call(protocol.TypeAck, &protocol.Ack{Conv: conv, Seq: 1}, protocol.TypeOK)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	_ = bystander.c.SetDeadline(time.Now().Add(10 * time.Second))
	bystander.id++
	if _, err := bystander.c.Write(protocol.MustFrame(protocol.TypeAck, bystander.id, &protocol.Ack{Conv: conv, Seq: 1})); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("read in %v; count so far %d in %d events", took, sent.last.Load(), sent.events.Load())
	clienttest.Eventually(t, 5*time.Second, "the count of all readers", func() bool { return sent.last.Load() == members-1 })
	time.Sleep(3 * interval) // a late event would show here
	bound := int64(math.Ceil(float64(took)/float64(interval))) + 2
	ev, bytes := sent.events.Load(), sent.bytes.Load()
	t.Logf("%d readers in %v: the sender got %d GroupReadEvents (%d bytes; bound %d); one event per read would be %d frames to each member",
		members-1, took.Round(time.Millisecond), ev, bytes, bound, members-1)
	if ev > bound {
		t.Errorf("the sender got %d GroupReadEvents for one message, above the bound %d", ev, bound)
	}
	if n := seen.events.Load() + seen.other.Load(); n != 0 {
		t.Errorf("a member who sent nothing got %d receipt frames", n)
	}
	if n := sent.other.Load(); n != 0 {
		t.Errorf("the sender got %d other receipt frames", n)
	}
	// Who has read, on request.
	b, err := dialToken(srv.Addr(), readerToken(5))
	if err != nil {
		t.Fatal(err)
	}
	defer b.c.Close()
	body, err := b.call(protocol.TypeReaders, &protocol.Readers{Conv: conv, Seq: 1}, protocol.TypeReaderList)
	if err != nil {
		t.Fatal(err)
	}
	var rl protocol.ReaderList
	if err := protocol.DecodeBody(body, &rl); err != nil || len(rl.Users) != members-1 || rl.Users[0] == ids[0] {
		t.Fatalf("Readers: %d users (%v), want %d without the sender", len(rl.Users), err, members-1)
	}
}

// Typing and read receipts between users of different nodes of an
// in-process cluster, over its bus.
func TestReceiptsAcrossNodes(t *testing.T) {
	c := servertest.NewCluster(t, 500*time.Millisecond)
	mut := func(cfg *server.Config) { cfg.ReceiptInterval = 50 * time.Millisecond }
	n1, n2 := c.Start(mut), c.Start(mut)
	tab := c.WaitOwners(n1, n2)
	clienttest.ReceiptsAcross(t, tab.Owner, n1.Name, n2.Name, 5*time.Second)
}

// group runs functions, at most limit at once, and keeps the first error.
type group struct {
	wg    sync.WaitGroup
	sem   chan struct{}
	mu    sync.Mutex
	first error
}

func newGroup(limit int) *group { return &group{sem: make(chan struct{}, limit)} }

func (g *group) Go(fn func() error) {
	g.wg.Add(1)
	g.sem <- struct{}{}
	go func() {
		defer func() { <-g.sem; g.wg.Done() }()
		if err := fn(); err != nil {
			g.mu.Lock()
			if g.first == nil {
				g.first = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	return g.first
}
