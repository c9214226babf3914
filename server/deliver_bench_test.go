package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// fakeLoop is an event loop without sockets: a goroutine that runs the
// tasks handed to it (Execute), as gnet's loop does.
type fakeLoop struct {
	gnet.EventLoop // only Execute and Close are called
	tasks          chan gnet.Runnable
}

func newFakeLoop() *fakeLoop {
	l := &fakeLoop{tasks: make(chan gnet.Runnable, 1024)}
	go func() {
		for r := range l.tasks {
			_ = r.Run(context.Background())
		}
	}()
	return l
}

func (l *fakeLoop) Execute(_ context.Context, r gnet.Runnable) error { l.tasks <- r; return nil }
func (l *fakeLoop) Close(gnet.Conn) error                            { return nil }

// fakeConn is a connection whose writes are counted and dropped.
type fakeConn struct {
	gnet.Conn // only the methods below are called
	loop      *fakeLoop
	written   *atomic.Int64
}

func (c *fakeConn) EventLoop() gnet.EventLoop { return c.loop }
func (c *fakeConn) OutboundBuffered() int     { return 0 }
func (c *fakeConn) Write(b []byte) (int, error) {
	c.written.Add(int64(len(b)))
	return len(b), nil
}

func (c *fakeConn) Writev(bs [][]byte) (int, error) {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	c.written.Add(int64(n))
	return n, nil
}

type fixedGroups struct {
	storage.Groups
	members []int64
}

func (g fixedGroups) MemberIDs(context.Context, int64) ([]int64, error) { return g.members, nil }

// BenchmarkGroupFanOut is the server's share of a group's fan-out without
// the sockets: commits of `batch` messages to a group whose members are
// all online, spread over two event loops, until every member's loop has
// flushed them. ns/delivery is the time from the commit to the last
// member's flush divided by the pushes (batch × members, no sender among
// them): the commit hook, the delivery shard and the loops' flushes, the
// loops running in parallel, without the write(2) a real connection adds;
// allocs/op is what one commit allocates.
func BenchmarkGroupFanOut(b *testing.B) {
	for _, members := range []int{1000} {
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("members=%d/batch=%d", members, batch), func(b *testing.B) {
				benchFanOut(b, members, batch)
			})
		}
	}
}

func benchFanOut(b *testing.B, members, batch int) {
	s := &Server{
		cfg: Config{RequestTimeout: time.Minute, MaxOutbound: 1 << 20},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hub: newHub(),
	}
	ids := make([]int64, members)
	loops := [2]*fakeLoop{newFakeLoop(), newFakeLoop()}
	defer func() {
		for _, l := range loops {
			close(l.tasks)
		}
	}()
	var written atomic.Int64
	for i := range ids {
		ids[i] = int64(i + 1)
		ss := &session{id: uint64(i + 1), srv: s}
		ss.c = &fakeConn{loop: loops[i%2], written: &written}
		s.hub.login(ids[i], ss)
	}
	s.members = newMemberCache(fixedGroups{members: ids})
	d := newDelivery(s)
	defer d.stop()
	conv := protocol.GroupConv(7)
	msgs := make([]protocol.Message, batch)
	for i := range msgs {
		msgs[i] = protocol.Message{MsgID: int64(i + 1), Conv: conv, GroupID: 7, From: 1, Body: make([]byte, 100), ServerTime: time.Now().UnixMilli()}
	}
	frame := len(protocol.MustFrame(protocol.TypePush, 0, &msgs[0]))
	perCommit := int64(frame * batch * members)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d.committed(msgs)
		want := int64(i+1) * perCommit
		for written.Load() < want {
			time.Sleep(10 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch*members), "ns/delivery")
}
