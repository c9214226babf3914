package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyim/parley/storage/blob"
	"github.com/parleyim/parley/storage/blob/blobtest"
)

func TestDisk(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		d, err := blob.OpenDisk(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestParseSum(t *testing.T) {
	good := "b94f5ce0690dbe021dcf4110f2c756483eee412ce056843451eb3b19c15547ad"
	if s, ok := blob.ParseSum(good); !ok || s.String() != good {
		t.Fatalf("ParseSum(%q) = %v, %v", good, s, ok)
	}
	for _, bad := range []string{"", "../../etc/passwd", good[:63], good + "0", "B94F5CE0690DBE021DCF4110F2C756483EEE412CE056843451EB3B19C15547AD",
		"..%2f" + good[5:], "g" + good[1:], good[:62] + "/."} {
		if _, ok := blob.ParseSum(bad); ok {
			t.Errorf("ParseSum(%q) accepted", bad)
		}
	}
}

// BenchmarkDiskCollector: the collector's work on local disk per file, in
// a store of 1,000 files of 1 KiB, each with one uploader: List of all of
// them (one op), and Remove (per file). Baseline: the Put of a new file.
func BenchmarkDiskCollector(b *testing.B) {
	const files = 1000
	fill := func(b *testing.B) (*blob.Disk, []blob.Sum) {
		d, err := blob.OpenDisk(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		var sums []blob.Sum
		for i := range files {
			data := make([]byte, 1024)
			binary.BigEndian.PutUint64(data, uint64(i))
			sum := blob.Sum(sha256.Sum256(data))
			if err := d.AddOwner(context.Background(), sum, 1); err != nil {
				b.Fatal(err)
			}
			if err := d.Put(context.Background(), sum, bytes.NewReader(data), int64(len(data))); err != nil {
				b.Fatal(err)
			}
			sums = append(sums, sum)
		}
		return d, sums
	}
	b.Run("Put", func(b *testing.B) {
		d, err := blob.OpenDisk(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		for i := range b.N {
			data := make([]byte, 1024)
			binary.BigEndian.PutUint64(data, uint64(i))
			if err := d.Put(context.Background(), sha256.Sum256(data), bytes.NewReader(data), int64(len(data))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List1000", func(b *testing.B) {
		d, _ := fill(b)
		b.ResetTimer()
		for range b.N {
			if got, err := d.List(context.Background(), blob.Sum{}, files); err != nil || len(got) != files {
				b.Fatal(len(got), err)
			}
		}
	})
	b.Run("Remove", func(b *testing.B) {
		for done := 0; done < b.N; {
			b.StopTimer()
			d, sums := fill(b)
			b.StartTimer()
			for _, sum := range sums[:min(files, b.N-done)] {
				if ok, err := d.Remove(context.Background(), sum, time.Now().Add(time.Hour)); err != nil || !ok {
					b.Fatal(ok, err)
				}
				done++
			}
		}
	})
}

// A Remove cut short (the blob moved to trash/, the process gone) is
// undone by Recover, and at the next open.
func TestDiskRecover(t *testing.T) {
	dir := t.TempDir()
	d, err := blob.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte("moved aside")
	sum := blob.Sum(sha256.Sum256(data))
	if err := d.Put(ctx, sum, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	h := sum.String()
	aside := func() {
		t.Helper()
		if err := os.Rename(filepath.Join(dir, "blobs", h[:2], h), filepath.Join(dir, "trash", h+"-7")); err != nil {
			t.Fatal(err)
		}
	}
	there := func(what string) {
		t.Helper()
		r, _, err := d.Open(ctx, sum)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		r.Close()
	}
	aside()
	if n, err := d.Recover(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Recover of a recent move (a Remove at work): %d, %v", n, err)
	}
	if n, err := d.Recover(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Recover: %d, %v; want 1 put back", n, err)
	}
	there("after Recover")
	aside()
	if d, err = blob.OpenDisk(dir); err != nil {
		t.Fatal(err)
	}
	there("after a reopen")
}
