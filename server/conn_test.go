package server_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

func TestBadInput(t *testing.T) {
	srv := startServer(t, nil)
	bystander := dial(t, srv.Addr())
	bystander.register("bystander")

	closing := []struct {
		name  string
		bytes []byte
		code  protocol.Code
	}{
		{"oversize length", []byte{0x00, 0x10, 0x00, 0x01}, protocol.CodeFrameTooLarge},
		{"length below header", []byte{0, 0, 0, 3, 1, 0, 0}, protocol.CodeBadFrame},
		{"bad version", func() []byte {
			b := protocol.MustFrame(protocol.TypePing, 9, nil)
			b[4] = 7
			return b
		}(), protocol.CodeBadVersion},
	}
	for _, tc := range closing {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv.Addr())
			c.sendBytes(tc.bytes)
			c.expectError(0, tc.code)
			c.expectKick(protocol.KickProtocolError)
			c.expectClosed()
		})
	}

	t.Run("recoverable", func(t *testing.T) {
		c := dial(t, srv.Addr())
		// Before login: only Register, Login and Ping.
		id := c.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "x", To: 1})
		c.expectError(id, protocol.CodeNotLoggedIn)
		c.ping()
		// Unknown frame type, and a type only the server sends.
		id = c.send(protocol.Type(0x7777), nil)
		c.expectError(id, protocol.CodeUnknownType)
		id = c.send(protocol.TypePush, &protocol.Message{})
		c.expectError(id, protocol.CodeUnknownType)
		// A body that is not msgpack, and one with a field of the wrong type.
		bad := protocol.MustFrame(protocol.TypeLogin, 41, nil)
		bad = append(bad, 0xc1) // never used in msgpack
		binary.BigEndian.PutUint32(bad, uint32(len(bad)-4))
		c.sendBytes(bad)
		c.expectError(41, protocol.CodeBadBody)
		wrong := protocol.MustFrame(protocol.TypeLogin, 42, map[string]any{"username": 12})
		c.sendBytes(wrong)
		c.expectError(42, protocol.CodeBadBody)
		// Bad credentials, then a good register still works on the same connection.
		id = c.send(protocol.TypeLogin, &protocol.Login{Username: "nobody", Password: "whatever1"})
		c.expectError(id, protocol.CodeBadCredentials)
		id = c.send(protocol.TypeLogin, &protocol.Login{Token: "forged"})
		c.expectError(id, protocol.CodeTokenInvalid)
		id = c.send(protocol.TypeRegister, &protocol.Register{Username: "x", Password: "correct horse"})
		c.expectError(id, protocol.CodeInvalidUsername)
		id = c.send(protocol.TypeRegister, &protocol.Register{Username: "shorty", Password: "short"})
		c.expectError(id, protocol.CodeWeakPassword)
		id = c.send(protocol.TypeRegister, &protocol.Register{Username: "BYSTANDER", Password: "correct horse"})
		c.expectError(id, protocol.CodeUsernameTaken)
		c.register("recovered")
		id = c.send(protocol.TypeLogin, &protocol.Login{Username: "recovered", Password: "correct horse"})
		c.expectError(id, protocol.CodeAlreadyLogged)
	})

	t.Run("split and coalesced", func(t *testing.T) {
		c := dial(t, srv.Addr())
		var stream []byte
		for i := uint32(1); i <= 50; i++ {
			stream = append(stream, protocol.MustFrame(protocol.TypePing, i, nil)...)
		}
		// A register pipelined with a send in the same write: the send waits
		// for the login it follows.
		stream = append(stream, protocol.MustFrame(protocol.TypeRegister, 100, &protocol.Register{Username: "pipelined", Password: "correct horse"})...)
		stream = append(stream, protocol.MustFrame(protocol.TypeConversations, 101, nil)...)
		for i := 0; i < len(stream); i += 7 {
			c.sendBytes(stream[i:min(i+7, len(stream))])
		}
		for i := uint32(1); i <= 50; i++ {
			c.expect(protocol.TypePong, i, nil)
		}
		c.expect(protocol.TypeLoginOK, 100, nil)
		c.expect(protocol.TypeConversationList, 101, nil)
	})

	bystander.ping()
}

func TestConnectionCap(t *testing.T) {
	const limit = 20
	srv := startServer(t, func(c *server.Config) { c.MaxConns = limit })
	if srv.MaxConns() != limit {
		t.Fatalf("cap %d", srv.MaxConns())
	}
	held := make([]*raw, limit)
	for i := range held {
		held[i] = dial(t, srv.Addr())
		held[i].ping()
	}
	for range 5 {
		over := dial(t, srv.Addr())
		over.expectKick(protocol.KickTooManyConns)
		over.expectClosed()
	}
	for _, c := range held {
		c.ping()
	}
	_ = held[0].c.Close()
	waitFor(t, func() bool { return srv.Conns() < limit })
	dial(t, srv.Addr()).ping()
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.Heartbeat = 200 * time.Millisecond })
	silent := dial(t, srv.Addr())
	silent.register("silent")
	anonymous := dial(t, srv.Addr())
	chatty := dial(t, srv.Addr())
	chatty.register("chatty")
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		chatty.ping()
		_, _ = anonymous.c.Write(protocol.MustFrame(protocol.TypePing, 0, nil)) // pings do not log it in
		time.Sleep(100 * time.Millisecond)
	}
	silent.expectKick(protocol.KickIdle)
	silent.expectClosed()
	anonymous.expectKick(protocol.KickIdle)
	chatty.ping()
}

func TestSlowConsumerIsKicked(t *testing.T) {
	srv := startServer(t, func(c *server.Config) {
		c.MaxOutbound = 256 << 10
		c.MaxMessage = 16 << 10
		c.KickLinger = 300 * time.Millisecond
	})
	sender, sleeper := dial(t, srv.Addr()), dial(t, srv.Addr())
	sender.register("sender")
	s := sleeper.register("sleeper")
	body := bytes.Repeat([]byte("z"), 16<<10)
	// The sleeper never reads; once the kernel's buffers and the server's
	// queue fill, the server kicks it instead of growing, and closes it
	// when its Kick has lingered unread for KickLinger.
	for i := 0; i < 4000 && srv.Conns() == 2; i++ {
		id := sender.send(protocol.TypeSend, &protocol.Send{ClientMsgID: fmt.Sprintf("s%d", i), To: s.UserID, Body: body})
		sender.expect(protocol.TypeSendAck, id, nil)
	}
	waitFor(t, func() bool { return srv.Conns() < 2 })
	sender.ping()
}

func TestFailedLoginsAreLimited(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.LoginFailuresPerUser = 3 })
	dial(t, srv.Addr()).register("victim")
	c := dial(t, srv.Addr())
	for range 3 {
		id := c.send(protocol.TypeLogin, &protocol.Login{Username: "victim", Password: "guess-guess"})
		c.expectError(id, protocol.CodeBadCredentials)
	}
	id := c.send(protocol.TypeLogin, &protocol.Login{Username: "victim", Password: "correct horse"})
	e := c.expectError(id, protocol.CodeTooManyAttempts)
	if e.Until <= time.Now().UnixMilli() {
		t.Fatalf("until %d is not in the future", e.Until)
	}
}

func TestRateLimit(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.RateLimit = 10; c.RateBurst = 5 })
	c := dial(t, srv.Addr())
	c.register("hasty")
	var stream []byte
	for i := uint32(1); i <= 20; i++ {
		stream = append(stream, protocol.MustFrame(protocol.TypeConversations, i, nil)...)
	}
	c.sendBytes(stream)
	limited := 0
	for range 20 {
		f, err := c.next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.h.Type == protocol.TypeError {
			limited++
		}
	}
	// The register used one token of the burst of 5.
	if limited < 14 || limited > 16 {
		t.Fatalf("%d of 20 frames limited, want about 16", limited)
	}
}

func TestLogoutRevokesToken(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv.Addr())
	ok := c.register("leaver")
	id := c.send(protocol.TypeLogout, nil)
	c.expect(protocol.TypeOK, id, nil)
	c.expectKick(protocol.KickLogout)
	c.expectClosed()
	d := dial(t, srv.Addr())
	id = d.send(protocol.TypeLogin, &protocol.Login{Token: ok.Token})
	d.expectError(id, protocol.CodeTokenInvalid)
}

func TestShutdownKicksClients(t *testing.T) {
	srv := startServer(t, nil)
	c := dial(t, srv.Addr())
	c.register("stayer")
	go func() { _ = srv.Stop(t.Context()) }()
	c.expectKick(protocol.KickShutdown)
	c.expectClosed()
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
