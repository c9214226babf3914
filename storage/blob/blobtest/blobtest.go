// Package blobtest is the contract suite of blob.Store: every backend runs
// Run with a factory of fresh, empty stores.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/storage/blob"
)

// Run runs the contract against stores from open.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return c
	}
	sumOf := func(b []byte) blob.Sum { return sha256.Sum256(b) }

	t.Run("PutOpen", func(t *testing.T) {
		s, c := open(t), ctx(t)
		for _, size := range []int{0, 1, 4096, 1<<20 + 7} {
			data := bytes.Repeat([]byte{byte(size)}, size)
			sum := sumOf(data)
			if err := s.Put(c, sum, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("Put %d bytes: %v", size, err)
			}
			r, n, err := s.Open(c, sum)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || n != int64(size) || !bytes.Equal(got, data) {
				t.Fatalf("Open %d bytes: size %d, %d bytes read, equal %v, err %v", size, n, len(got), bytes.Equal(got, data), err)
			}
		}
	})

	t.Run("OpenMissing", func(t *testing.T) {
		s, c := open(t), ctx(t)
		if _, _, err := s.Open(c, sumOf([]byte("never stored"))); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open of a missing blob: %v, want ErrNotFound", err)
		}
	})

	t.Run("PutTwiceKeepsOne", func(t *testing.T) {
		s, c := open(t), ctx(t)
		data := []byte("the same content twice")
		sum := sumOf(data)
		for i := 0; i < 2; i++ {
			if err := s.Put(c, sum, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("Put %d: %v", i, err)
			}
		}
		r, _, err := s.Open(c, sum)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got, _ := io.ReadAll(r); !bytes.Equal(got, data) {
			t.Fatalf("content %q", got)
		}
	})

	t.Run("PutWrongSize", func(t *testing.T) {
		s, c := open(t), ctx(t)
		data := []byte("twelve bytes")
		sum := sumOf(data)
		for _, size := range []int64{int64(len(data)) + 5, int64(len(data)) - 2} {
			if err := s.Put(c, sum, bytes.NewReader(data), size); !errors.Is(err, blob.ErrSize) {
				t.Fatalf("Put with size %d of %d bytes: %v, want ErrSize", size, len(data), err)
			}
			if r, _, err := s.Open(c, sum); !errors.Is(err, blob.ErrNotFound) {
				if r != nil {
					r.Close()
				}
				t.Fatalf("after a refused Put, Open: %v, want ErrNotFound", err)
			}
		}
	})

	t.Run("Owners", func(t *testing.T) {
		s, c := open(t), ctx(t)
		sum, other := sumOf([]byte("a")), sumOf([]byte("b"))
		if ok, err := s.IsOwner(c, sum, 7); err != nil || ok {
			t.Fatalf("IsOwner before AddOwner: %v %v", ok, err)
		}
		for i := 0; i < 2; i++ {
			if err := s.AddOwner(c, sum, 7); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.IsOwner(c, sum, 7); err != nil || !ok {
			t.Fatalf("IsOwner after AddOwner: %v %v", ok, err)
		}
		if ok, _ := s.IsOwner(c, sum, 8); ok {
			t.Fatal("user 8 owns a blob user 7 uploaded")
		}
		if ok, _ := s.IsOwner(c, other, 7); ok {
			t.Fatal("user 7 owns a blob of another sum")
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s, c := open(t), ctx(t)
		data := []byte(strings.Repeat("concurrent ", 10000))
		sum := sumOf(data)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(c, sum, bytes.NewReader(data), int64(len(data)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		r, n, err := s.Open(c, sum)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if got, _ := io.ReadAll(r); n != int64(len(data)) || !bytes.Equal(got, data) {
			t.Fatal("concurrent Puts left other content")
		}
	})
}
