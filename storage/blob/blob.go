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
	// AddOwner records that user uploaded blob sum (idempotent).
	AddOwner(ctx context.Context, sum Sum, user int64) error
	// IsOwner reports whether user uploaded blob sum.
	IsOwner(ctx context.Context, sum Sum, user int64) (bool, error)
	// Close releases the store.
	Close() error
}
