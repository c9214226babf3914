package pebble

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// The kill -9 test: a child process (this test binary, run again) appends
// from many goroutines and prints each append once it returns, the way a
// node sends a SendAck; the parent SIGKILLs it mid-load, reopens the
// directory and checks that every printed message is there under the seq it
// was given, that each conversation's seqs are dense, and that a resend of
// an acknowledged message is a duplicate. Three rounds on one directory, so
// each start recovers the WAL of a killed one.

const (
	crashDirEnv   = "PARLEY_PEBBLE_CRASH_DIR"
	crashRoundEnv = "PARLEY_PEBBLE_CRASH_ROUND"
	crashConvs    = 16
	crashWorkers  = 64
)

func TestKillUnderLoad(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir, os.Getenv(crashRoundEnv))
		return
	}
	dir := t.TempDir()
	type acked struct {
		conv  string
		seq   uint64
		msgID int64
		from  int64
		cmid  string
	}
	var all []acked
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillUnderLoad$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		killed := false
		deadline := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		for sc.Scan() {
			var a acked
			if _, err := fmt.Sscan(sc.Text(), &a.conv, &a.seq, &a.msgID, &a.from, &a.cmid); err != nil {
				t.Fatalf("child printed %q: %v", sc.Text(), err)
			}
			all = append(all, a)
			// Kill at a point that differs per round, under full load.
			if n++; n == 1500+round*700 && !killed {
				killed = true
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		deadline.Stop()
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended after %d appends before it was killed: %v", round, n, err)
		}
		t.Logf("round %d: killed after %d acknowledged appends", round, n)

		s := open(t, Config{Dir: dir})
		ctx := context.Background()
		stored := map[string][]protocol.Message{}
		for c := range crashConvs {
			conv := protocol.DirectConv(1, int64(c)+2)
			msgs, _, last, _, err := s.After(ctx, 1, conv, 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range msgs {
				if m.Seq != uint64(i+1) {
					t.Fatalf("round %d: %s: seq %d at position %d (last %d): not dense", round, conv, m.Seq, i, last)
				}
			}
			if uint64(len(msgs)) != last {
				t.Fatalf("round %d: %s: %d messages, last seq %d", round, conv, len(msgs), last)
			}
			stored[conv] = msgs
		}
		for _, a := range all {
			msgs := stored[a.conv]
			if a.seq == 0 || a.seq > uint64(len(msgs)) || msgs[a.seq-1].MsgID != a.msgID {
				t.Fatalf("round %d: acknowledged %s/%d (msg %d) lost", round, a.conv, a.seq, a.msgID)
			}
		}
		// Cursors survive as far as they were written, never past a message.
		for c := range crashConvs {
			peer := int64(c) + 2
			cs, err := s.Conversations(ctx, peer, 10)
			if err != nil || len(cs) != 1 || cs[0].AckSeq > cs[0].LastSeq {
				t.Fatalf("round %d: peer %d conversations %+v, %v", round, peer, cs, err)
			}
		}
		// A resend of an acknowledged message is the same message.
		a := all[len(all)-1]
		m := &protocol.Message{MsgID: 1, Conv: a.conv, From: a.from, To: 2, ClientMsgID: a.cmid, Body: []byte("again"), ServerTime: 1}
		if stored, dup, err := s.Append(ctx, m); err != nil || !dup || stored.Seq != a.seq {
			t.Fatalf("round %d: resend of %s/%d = seq %d dup %v, %v", round, a.conv, a.seq, stored.Seq, dup, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// crashChild appends until it is killed, printing each acknowledged append.
func crashChild(dir, round string) {
	s, err := Open(Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	body := make([]byte, 100)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range crashWorkers {
		wg.Go(func() {
			for i := 0; ; i++ {
				peer := int64((g+i)%crashConvs) + 2
				m := &protocol.Message{
					MsgID: time.Now().UnixNano(), Conv: protocol.DirectConv(1, peer), From: 1, To: peer,
					ClientMsgID: fmt.Sprintf("r%s-%d-%d", round, g, i), Body: body, ServerTime: time.Now().UnixMilli(),
				}
				stored, dup, err := s.Append(ctx, m)
				if err != nil || dup {
					fmt.Fprintln(os.Stderr, "child: append:", dup, err)
					os.Exit(2)
				}
				// The peer reads as it goes: cursors ride along.
				_ = s.Ack(ctx, peer, stored.Conv, stored.Seq)
				mu.Lock()
				fmt.Fprintln(w, stored.Conv, stored.Seq, stored.MsgID, stored.From, stored.ClientMsgID)
				_ = w.Flush()
				mu.Unlock()
			}
		})
	}
	time.Sleep(20 * time.Second) // the parent kills long before
	fmt.Fprintln(os.Stderr, "child: not killed")
	os.Exit(3)
}
