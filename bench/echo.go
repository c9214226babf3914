package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// The baseline: a minimal length-prefixed echo server on gnet (a 4-byte
// length, then the payload; every frame is written back), measured with
// the same load pattern as p2p. It is the ceiling of what a gnet server on
// this machine does per round trip with no protocol, storage or fan-out,
// so Parley's figures are reported as ratios of it.

type echoServer struct {
	gnet.BuiltinEventEngine
	booted chan struct{}
	eng    gnet.Engine
}

func (s *echoServer) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

func (s *echoServer) OnTraffic(c gnet.Conn) gnet.Action {
	for {
		head, err := c.Peek(4)
		if err != nil {
			return gnet.None
		}
		n := 4 + int(binary.BigEndian.Uint32(head))
		if n > 1<<20 {
			return gnet.Close
		}
		if c.InboundBuffered() < n {
			return gnet.None
		}
		frame, _ := c.Next(n)
		_, _ = c.Write(frame)
	}
}

// StartEcho runs the echo server on addr until the returned stop is called.
func StartEcho(addr string, loops int) (stop func(), err error) {
	s := &echoServer{booted: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(s, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithNumEventLoop(loops), gnet.WithReusePort(true),
			gnet.WithLogLevel(logging.ErrorLevel))
	}()
	select {
	case <-s.booted:
	case err := <-errc:
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.eng.Stop(ctx)
		<-errc
	}, nil
}

// Echo measures round trips against an echo server at o.Addr with the
// p2p load: Pairs connections, each keeping Window frames of Size bytes in
// flight.
func Echo(ctx context.Context, o P2POptions) (Result, error) {
	o.Window = max(o.Window, 1)
	var m *meter
	var live atomic.Bool
	conns := make([]net.Conn, o.Pairs)
	for i := range conns {
		c, err := dial(ctx, o.Addr)
		if err != nil {
			return Result{}, err
		}
		conns[i] = c
	}
	m = newMeter(o.Options, "echo", "round trips/s")
	live.Store(true)
	deadline := time.Now().Add(o.Duration)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, c := range conns {
		inflight := make(chan struct{}, o.Window)
		wg.Add(2)
		go func() { // reader
			defer wg.Done()
			r := bufio.NewReaderSize(c, 64<<10)
			head := make([]byte, 4)
			body := make([]byte, 1<<16)
			for {
				if _, err := io.ReadFull(r, head); err != nil {
					return
				}
				n := int(binary.BigEndian.Uint32(head))
				if n > len(body) {
					body = make([]byte, n)
				}
				if _, err := io.ReadFull(r, body[:n]); err != nil {
					return
				}
				if live.Load() {
					m.count.Add(1)
					m.lat.Record(since(body[:n]))
				}
				<-inflight
			}
		}()
		go func() { // writer
			defer wg.Done()
			defer c.Close()
			w := bufio.NewWriterSize(c, 16<<10)
			frame := make([]byte, 4+max(o.Size, 8))
			for time.Now().Before(deadline) && ctx.Err() == nil {
				select {
				case inflight <- struct{}{}:
				case <-time.After(5 * time.Second):
					failed.Add(1)
					return
				}
				binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
				copy(frame[4:], stamp(8))
				if _, err := w.Write(frame); err != nil {
					return
				}
				if len(inflight) == cap(inflight) {
					if err := w.Flush(); err != nil {
						return
					}
				}
			}
			_ = w.Flush()
			// Wait for the last echoes before closing.
			for i := 0; i < 100 && len(inflight) > 0; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	live.Store(false)
	res := m.finish(map[string]any{"pairs": o.Pairs, "window": o.Window, "size": o.Size})
	if n := failed.Load(); n > 0 {
		res.Failures = map[string]int{"stalled": int(n)}
	}
	return res, nil
}
