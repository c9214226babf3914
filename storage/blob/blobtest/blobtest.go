// Package blobtest is the contract suite of blob.Store: every backend runs
// Run with a factory of fresh, empty stores.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
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

	if _, ok := open(t).(blob.Collector); ok {
		runCollector(t, func(t *testing.T) (blob.Store, blob.Collector) {
			st := open(t)
			return st, st.(blob.Collector)
		}, ctx)
	}
}

// tick separates two times a store must tell apart: S3's Last-Modified has
// seconds.
const tick = 1100 * time.Millisecond

// upload is an upload as server/files does it: the mark, then the content.
func upload(c context.Context, s blob.Store, data []byte, user int64) error {
	sum := blob.Sum(sha256.Sum256(data))
	if err := s.AddOwner(c, sum, user); err != nil {
		return err
	}
	return s.Put(c, sum, bytes.NewReader(data), int64(len(data)))
}

func runCollector(t *testing.T, open func(t *testing.T) (blob.Store, blob.Collector), ctx func(t *testing.T) context.Context) {
	t.Run("CollectorList", func(t *testing.T) {
		s, col := open(t)
		c := ctx(t)
		var sums []blob.Sum
		for i := range 5 {
			data := []byte(strings.Repeat("x", i+1))
			if err := upload(c, s, data, 1); err != nil {
				t.Fatal(err)
			}
			sums = append(sums, sha256.Sum256(data))
		}
		slices.SortFunc(sums, func(a, b blob.Sum) int { return bytes.Compare(a[:], b[:]) })
		var got []blob.Sum
		var after blob.Sum
		for range 10 {
			page, err := col.List(c, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("List of 2 returned %d", len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, in := range page {
				got = append(got, in.Sum)
				if in.Size < 1 || in.Size > 5 || in.Modified.IsZero() {
					t.Errorf("List: %+v", in)
				}
			}
			after = page[len(page)-1].Sum
		}
		if !slices.Equal(got, sums) {
			t.Fatalf("List in pages of 2: %d blobs, want the %d in order", len(got), len(sums))
		}
	})

	t.Run("CollectorRemove", func(t *testing.T) {
		s, col := open(t)
		c := ctx(t)
		data := []byte("collect me")
		sum := blob.Sum(sha256.Sum256(data))
		if err := upload(c, s, data, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(tick)
		mid := time.Now()
		time.Sleep(tick)
		// Uploaded again by user 2 after mid: kept, with both owners.
		if err := upload(c, s, data, 2); err != nil {
			t.Fatal(err)
		}
		if ok, err := col.Remove(c, sum, mid); err != nil || ok {
			t.Fatalf("Remove of a blob uploaded again after before: %v, %v; want kept", ok, err)
		}
		for _, u := range []int64{1, 2} {
			if ok, _ := s.IsOwner(c, sum, u); !ok {
				t.Fatalf("user %d no longer owns the kept blob", u)
			}
		}
		if r, _, err := s.Open(c, sum); err != nil {
			t.Fatalf("Open of the kept blob: %v", err)
		} else {
			r.Close()
		}
		// Nothing at or after before: removed, owners too.
		if ok, err := col.Remove(c, sum, time.Now().Add(time.Hour)); err != nil || !ok {
			t.Fatalf("Remove: %v, %v; want removed", ok, err)
		}
		if _, _, err := s.Open(c, sum); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open after Remove: %v", err)
		}
		if ok, _ := s.IsOwner(c, sum, 1); ok {
			t.Fatal("an owner record outlived its blob")
		}
		if page, err := col.List(c, blob.Sum{}, 10); err != nil || len(page) != 0 {
			t.Fatalf("List after Remove: %d blobs, %v", len(page), err)
		}
		if ok, err := col.Remove(c, sum, time.Now().Add(time.Hour)); err != nil || ok {
			t.Fatalf("Remove of a missing blob: %v, %v", ok, err)
		}
		// A finished Remove leaves nothing for Recover.
		if n, err := col.Recover(c, time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("Recover after a finished Remove: %d put back, %v", n, err)
		}
		if _, _, err := s.Open(c, sum); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("Open after Recover: %v", err)
		}
	})

	// An upload of the same content while Remove runs never loses the
	// file: whichever way they interleave, the blob is there after both.
	t.Run("CollectorRemoveRacesUpload", func(t *testing.T) {
		s, col := open(t)
		c := ctx(t)
		for i := range 2 {
			data := []byte(fmt.Sprintf("raced content %d", i))
			sum := blob.Sum(sha256.Sum256(data))
			if err := upload(c, s, data, 1); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tick)
			before := time.Now()
			// The upload's mark must read as at or after before: file
			// times come from a coarse clock, and S3's have seconds.
			time.Sleep(tick)
			var wg sync.WaitGroup
			var removed bool
			var rerr, uerr error
			wg.Add(2)
			go func() { defer wg.Done(); removed, rerr = col.Remove(c, sum, before) }()
			go func() { defer wg.Done(); uerr = upload(c, s, data, 2) }()
			wg.Wait()
			if rerr != nil || uerr != nil {
				t.Fatalf("Remove: %v; upload: %v", rerr, uerr)
			}
			r, n, err := s.Open(c, sum)
			if err != nil {
				t.Fatalf("round %d: after a Remove (removed %v) raced an upload, Open: %v", i, removed, err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if n != int64(len(data)) || !bytes.Equal(got, data) {
				t.Fatalf("round %d: content %q", i, got)
			}
			if ok, _ := s.IsOwner(c, sum, 2); !ok {
				t.Fatalf("round %d: the second uploader's record is gone", i)
			}
		}
	})
}
