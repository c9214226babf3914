// Package blob stores attachment files by the SHA-256 of their content,
// with a record of who uploaded each. Disk (this package) keeps them in a
// local directory, the default; storage/blob/s3 in any S3-compatible
// object store. Both pass storage/blob/blobtest.
package blob

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"time"
)

// Errors every Store returns for the cases below, matched with errors.Is.
// Any other error means the store could not do the work.
var (
	ErrNotFound = errors.New("blob: not found")
	ErrSize     = errors.New("blob: size differs from the content")
)

// Sum is a blob's key: the SHA-256 of its content.
type Sum [32]byte

// String is the lowercase hex of s, the blob's name in every store.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// ParseSum reads the 64 lowercase hex digits of a Sum; ok is false for
// anything else (upper case, other lengths, other characters), so a Sum
// taken from a URL can name nothing but a blob.
func ParseSum(s string) (sum Sum, ok bool) {
	if len(s) != 64 {
		return sum, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return sum, false
		}
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}

// Store keeps blobs. The caller has verified that sum is the SHA-256 of the
// content it puts; a Store does not hash again. All methods are safe for
// concurrent use.
type Store interface {
	// Put stores size bytes read from r as blob sum. When Put returns nil
	// the blob is durable and complete: a reader never sees part of it. A
	// blob that exists already is kept (content addressing makes the two
	// equal) and r need not be read. ErrSize if r holds another number of
	// bytes; nothing is stored then.
	Put(ctx context.Context, sum Sum, r io.Reader, size int64) error
	// Open returns the blob's content and size, or ErrNotFound. The caller
	// closes the reader.
	Open(ctx context.Context, sum Sum) (io.ReadCloser, int64, error)
	// AddOwner records that user uploaded blob sum, now: a second call
	// renews the record's time (Collector). An upload calls it before Put.
	AddOwner(ctx context.Context, sum Sum, user int64) error
	// IsOwner reports whether user uploaded blob sum.
	IsOwner(ctx context.Context, sum Sum, user int64) (bool, error)
	// Close releases the store.
	Close() error
}

// Info is a blob as a Collector lists it.
type Info struct {
	Sum      Sum
	Size     int64
	Modified time.Time // when its content was written (a later upload of the same content leaves it)
}

// Marked reports whether one of a blob's owner records (each with its
// time) is at or after before: the blob was marked uploaded then, and
// Collector.Remove keeps it.
func Marked(owners map[string]time.Time, before time.Time) bool {
	for _, t := range owners {
		if !t.Before(before) {
			return true
		}
	}
	return false
}

// Collector is the optional ability of a Store to have its unreferenced
// blobs removed (server/files' collector). Both stores have it.
//
// An upload is AddOwner, then Put: AddOwner marks the blob uploaded now
// (it creates or renews the uploader's record), and Put stores it unless
// it is there. Remove moves a blob out of the way before it looks at that
// mark for the last time, so an upload of the same content that runs
// meanwhile either renews the mark in time (Remove puts the blob back) or
// finds the blob gone and stores it again: a file is never lost to an
// upload that succeeded.
type Collector interface {
	// List returns up to n blobs with sums above after, in ascending
	// order of sum.
	List(ctx context.Context, after Sum, n int) ([]Info, error)
	// Remove deletes blob sum and its owner records unless it was written
	// or marked uploaded (AddOwner) at or after before: then it keeps
	// everything and returns false. Owner records of a blob that is not
	// there are removed when older than before.
	Remove(ctx context.Context, sum Sum, before time.Time) (bool, error)
	// Recover puts back the blobs a Remove moved aside before olderThan
	// and never finished with (the process stopped in between), unless
	// the blob is there again; it returns how many it put back.
	Recover(ctx context.Context, olderThan time.Time) (int, error)
}
