package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"image"
	"image/png"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/s3/s3test"
)

// newBlobs returns an empty blob store of kind: a local directory, or a
// bucket on the S3 server of `make services`.
func newBlobs(t testing.TB, kind string) blob.Store {
	t.Helper()
	if kind == "s3" {
		return s3test.Open(t)
	}
	d, err := blob.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fileStatus is the HTTP status and code of a file endpoint refusal.
func fileStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	var fe *client.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("want a refusal of the file endpoint, got %v", err)
	}
	return fe.Status, fe.Code
}

// TestFilesEndToEnd sends a picture 1:1 and to a group through a real
// server, on a local directory and on a real S3-compatible server, and
// checks who may download it.
func TestFilesEndToEnd(t *testing.T) {
	for _, kind := range []string{"disk", "s3"} {
		t.Run(kind, func(t *testing.T) {
			blobs := newBlobs(t, kind)
			srv := servertest.Start(t, func(c *server.Config) {
				c.FilesAddr, c.Blobs = "127.0.0.1:0", blobs
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			alice := clienttest.Join(t, srv.Addr(), "alice")
			bob := clienttest.Join(t, srv.Addr(), "bob")
			carol := clienttest.Join(t, srv.Addr(), "carol")
			if alice.FilesURL() != srv.FilesURL() || alice.FilesURL() == "" {
				t.Fatalf("LoginOK files_url %q, server %q", alice.FilesURL(), srv.FilesURL())
			}

			pic := pngOf(t, 64, 48)
			a, err := alice.Upload(ctx, "cat.png", bytes.NewReader(pic), int64(len(pic)))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(pic)
			if a.Name != "cat.png" || a.MIME != "image/png" || a.Size != int64(len(pic)) || !bytes.Equal(a.SHA256, sum[:]) ||
				a.Width != 64 || a.Height != 48 || a.URL != protocol.FilePath(sum[:]) {
				t.Fatalf("upload answered %+v", a)
			}

			// 1:1: bob may download, carol may not.
			ack, err := alice.SendAttachment(ctx, bob.ID, 0, a)
			if err != nil {
				t.Fatal(err)
			}
			var msg protocol.Message
			clienttest.Eventually(t, wait, "bob gets the attachment", func() bool {
				got := bob.Received(ack.Conv)
				if len(got) == 1 {
					msg = got[0]
				}
				return len(got) == 1
			})
			var buf bytes.Buffer
			if _, n, err := bob.Download(ctx, msg, &buf); err != nil || n != int64(len(pic)) || !bytes.Equal(buf.Bytes(), pic) {
				t.Fatalf("bob's download: %d bytes, equal %v, %v", n, bytes.Equal(buf.Bytes(), pic), err)
			}
			if _, _, err := carol.Download(ctx, msg, &buf); err == nil {
				t.Fatal("carol downloaded a file of a conversation she is not in")
			} else if st, code := fileStatus(t, err); st != 403 || code != "FORBIDDEN" {
				t.Fatalf("carol's download: %d %s", st, code)
			}

			// A hash alone grants nothing: carol, who never uploaded the
			// file, sends its attachment to bob; bob may not download it
			// through her message.
			ack2, err := carol.SendAttachment(ctx, bob.ID, 0, a)
			if err != nil {
				t.Fatal(err)
			}
			forged := protocol.Message{Conv: ack2.Conv, Seq: ack2.Seq, ContentType: protocol.ContentAttachment, Body: msg.Body}
			if _, _, err := bob.Download(ctx, forged, &buf); err == nil {
				t.Fatal("a message of a non-uploader gave access to the file")
			} else if st, _ := fileStatus(t, err); st != 403 {
				t.Fatalf("download through a non-uploader's message: %d", st)
			}

			// A group: members may download until they leave.
			g, err := alice.CreateGroup(ctx, "pics", false, bob.ID, carol.ID)
			if err != nil {
				t.Fatal(err)
			}
			gack, err := alice.SendAttachment(ctx, 0, g.GroupID, a)
			if err != nil {
				t.Fatal(err)
			}
			gmsg := protocol.Message{Conv: gack.Conv, Seq: gack.Seq, ContentType: protocol.ContentAttachment, Body: msg.Body}
			buf.Reset()
			if _, _, err := carol.Download(ctx, gmsg, &buf); err != nil || !bytes.Equal(buf.Bytes(), pic) {
				t.Fatalf("carol's download as a group member: %v", err)
			}
			if err := alice.RemoveFromGroup(ctx, g.GroupID, carol.ID); err != nil {
				t.Fatal(err)
			}
			clienttest.Eventually(t, wait, "carol loses access with her membership", func() bool {
				_, _, err := carol.Download(ctx, gmsg, &bytes.Buffer{})
				return err != nil
			})

			// A bad attachment body is refused at Send.
			_, err = alice.Send(ctx, bob.ID, protocol.ContentAttachment, []byte("not an attachment"))
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeBadAttachment {
				t.Fatalf("Send of a bad attachment body: %v", err)
			}
		})
	}
}
