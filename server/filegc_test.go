package server_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/s3/s3test"
)

// The collector of files on a real server, with files on local disk and on
// S3 (S3Proxy): after the grace period, a file a message holds stays; one
// uploaded and never sent, one whose message was recalled and one whose
// message was edited to another file go; a run examines at most Batch
// files.
func TestFilesCollected(t *testing.T) {
	// A grace long enough for the set-up on a loaded machine; S3's times
	// have seconds.
	t.Run("disk", func(t *testing.T) { testFilesCollected(t, nil, 2*time.Second) })
	t.Run("s3", func(t *testing.T) { testFilesCollected(t, s3test.Open(t), 2*time.Second) })
}

func testFilesCollected(t *testing.T, store blob.Store, grace time.Duration) {
	srv := startFiles(t, func(c *server.Config) {
		if store != nil {
			c.Blobs = store
		}
		c.FilesGC.Grace, c.FilesGC.Interval, c.FilesGC.Batch = grace, time.Hour, 2
	})
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	tok := alice.register(uniqueName("alice")).Token
	b := bob.register(uniqueName("bob")).UserID
	sums := map[string]string{}
	for _, name := range []string{"kept", "never-sent", "recalled", "edited-away", "edited-to"} {
		r, up := upload(t, srv, tok, name+".txt", []byte("the content of "+name))
		if r.status != 201 {
			t.Fatalf("upload %s: %d %s", name, r.status, r.Code)
		}
		sums[name] = up["sha256"].(string)
	}
	seq := uint64(0)
	send := func(cmid string, ct uint16, ref uint64, name string) {
		t.Helper()
		sum, _ := hex.DecodeString(sums[name])
		att := protocol.Attachment{Name: name + ".txt", MIME: "text/plain", Size: int64(len("the content of " + name)), SHA256: sum, URL: protocol.FilePath(sum)}
		body, err := protocol.EncodeAttachment(&att)
		if err != nil {
			t.Fatal(err)
		}
		id := alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: cmid, To: b, ContentType: ct, Ref: ref, Body: body})
		var ack protocol.SendAck
		alice.expect(protocol.TypeSendAck, id, &ack)
		seq = ack.Seq
	}
	send("k", protocol.ContentAttachment, 0, "kept")
	send("r", protocol.ContentAttachment, 0, "recalled")
	id := alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "r2", To: b, ContentType: protocol.ContentRecall, Ref: seq})
	alice.expect(protocol.TypeSendAck, id, nil)
	send("e", protocol.ContentAttachment, 0, "edited-away")
	send("e2", protocol.ContentEdit, seq, "edited-to")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Within the grace period nothing goes.
	for range 3 {
		if n, err := srv.CollectFiles(ctx); err != nil || n != 0 {
			t.Fatalf("a run within the grace period: %d removed, %v", n, err)
		}
	}
	time.Sleep(grace + 1100*time.Millisecond)
	removed := 0
	for range 3 { // 5 files, 2 a run: around once (the runs above went around once too)
		n, err := srv.CollectFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	st := srv.FilesGCStats()
	if removed != 3 || st.Removed != 3 || st.Held != 2 || st.Examined != 10 {
		t.Fatalf("removed %d, stats %+v; want 3 removed, 2 held", removed, st)
	}
	// A removed file has no owner left either: its uploader is refused.
	get := func(name string, want int) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.FilesURL()+"/v1/files/"+sums[name], nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if r, _ := do(t, req); r.status != want {
			t.Errorf("download of %s: %d, want %d", name, r.status, want)
		}
	}
	for name, want := range map[string]int{"kept": 200, "edited-to": 200, "never-sent": 403, "recalled": 403, "edited-away": 403} {
		get(name, want)
	}
	// Uploaded again, it is there again.
	if r, _ := upload(t, srv, tok, "again.txt", []byte("the content of never-sent")); r.status != 201 {
		t.Fatalf("upload again: %d %s", r.status, r.Code)
	}
	get("never-sent", 200)
}
