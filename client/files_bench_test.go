package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/parleyim/parley/client/clienttest"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// BenchmarkFiles measures upload and download throughput (MB/s) through a
// real server's file endpoint, on a local directory and on the S3 server of
// `make services`, against a baseline in the same run: the same bytes
// POSTed to, and fetched from, a bare net/http handler on loopback that
// neither hashes nor stores. Each upload is new content (its first bytes
// count up), so every one is hashed, spooled and stored.
//
//	go test -run '^$' -bench BenchmarkFiles -benchtime 20x ./client
func BenchmarkFiles(b *testing.B) {
	const size = 4 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}

	// The baseline: loopback HTTP and nothing else.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(data)
	})
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	base := "http://" + l.Addr().String()
	b.Run("baseline-upload", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			resp, err := http.Post(base+"/up", "application/octet-stream", bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	b.Run("baseline-download", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			resp, err := http.Get(base + "/down")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})

	for _, kind := range []string{"disk", "s3"} {
		b.Run(kind, func(b *testing.B) {
			blobs := newBlobs(b, kind)
			srv := servertest.Start(b, func(c *server.Config) {
				c.FilesAddr, c.Blobs = "127.0.0.1:0", blobs
				c.Files.MaxSize = 64 << 20
			})
			alice := clienttest.Join(b, srv.Addr(), "alice")
			bob := clienttest.Join(b, srv.Addr(), "bob")
			ctx := context.Background()
			var seq uint64
			next := func() []byte {
				seq++
				d := bytes.Clone(data)
				binary.BigEndian.PutUint64(d, seq)
				return d
			}
			b.Run("upload", func(b *testing.B) {
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					d := next()
					b.StartTimer()
					if _, err := alice.Upload(ctx, "bench.bin", bytes.NewReader(d), size); err != nil {
						b.Fatal(err)
					}
				}
			})
			a, err := alice.Upload(ctx, "bench.bin", bytes.NewReader(next()), size)
			if err != nil {
				b.Fatal(err)
			}
			ack, err := alice.SendAttachment(ctx, bob.ID, 0, a)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := protocol.EncodeAttachment(&a)
			msg := protocol.Message{Conv: ack.Conv, Seq: ack.Seq, ContentType: protocol.ContentAttachment, Body: body}
			b.Run("download", func(b *testing.B) {
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					if _, _, err := bob.Download(ctx, msg, io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
