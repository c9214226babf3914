package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/parleyim/parley/storage/blob"
)

// A Remove cut short (the blob copied to trash/ and removed, the process
// gone) is undone by Recover.
func TestRecover(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := []byte("moved aside")
	sum := blob.Sum(sha256.Sum256(data))
	if err := s.Put(ctx, sum, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	trash := s.prefix + "trash/" + sum.String() + "-7"
	if _, err := s.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: trash},
		minio.CopySrcOptions{Bucket: s.bucket, Object: s.blobKey(sum)}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, s.blobKey(sum), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Recover(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Recover of a recent move (a Remove at work): %d, %v", n, err)
	}
	if n, err := s.Recover(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Recover: %d, %v; want 1 put back", n, err)
	}
	r, _, err := s.Open(ctx, sum)
	if err != nil {
		t.Fatalf("Open after Recover: %v", err)
	}
	r.Close()
	if n, err := s.Recover(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("a second Recover: %d, %v", n, err)
	}
}

// openTest opens a store on a new bucket of the S3 server of `make
// services` (s3test, which imports this package, does the same for the
// other tests).
func openTest(t *testing.T) *Store {
	t.Helper()
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{
		Endpoint:     env("PARLEY_S3_ENDPOINT", "127.0.0.1:9333"),
		Bucket:       "parley-t-" + hex.EncodeToString(b[:]),
		AccessKey:    env("PARLEY_S3_ACCESS_KEY", "parley"),
		SecretKey:    env("PARLEY_S3_SECRET_KEY", "parley-secret-key"),
		Region:       "us-east-1",
		CreateBucket: true,
	})
	if err != nil {
		t.Fatalf("open the S3 store (run `make services`): %v", err)
	}
	return s
}
