// Package s3 is a blob.Store in an S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, S3Proxy, ...), through minio-go. The store's own
// dependencies stay in this package: parleyd links it, the rest of Parley
// does not.
//
// Objects, under an optional key prefix:
//
//	<prefix>blobs/<64 hex digits>                 the content
//	<prefix>owners/<64 hex digits>/<user id>      empty objects: who uploaded it (and when: its Last-Modified)
//	<prefix>trash/<64 hex digits>-<nanoseconds>   blobs Remove moved out of the way
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/parleyim/parley/storage/blob"
)

// Config says where the bucket is. Endpoint, Bucket, AccessKey and
// SecretKey are required.
type Config struct {
	// Endpoint is host[:port] of the S3 API, without a scheme:
	// s3.eu-west-1.amazonaws.com, minio.internal:9000, 127.0.0.1:9333.
	Endpoint string
	// Secure selects HTTPS (true) or plain HTTP.
	Secure bool
	// Region of the bucket; empty lets the client ask the server.
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	// Prefix goes before every object key ("parley/" keeps Parley's
	// objects apart in a shared bucket). Default none.
	Prefix string
	// CreateBucket creates the bucket at Open when it does not exist.
	CreateBucket bool
	// Transport is the HTTP transport to the store; nil: minio-go's
	// default.
	Transport http.RoundTripper
}

// Store is a blob.Store in a bucket.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
}

var _ blob.Store = (*Store)(nil)

// Open connects to the bucket of cfg and checks that it exists (creating
// it with CreateBucket).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	switch {
	case cfg.Endpoint == "" || strings.Contains(cfg.Endpoint, "://"):
		return nil, errors.New("s3: Endpoint must be host[:port], without a scheme")
	case cfg.Bucket == "":
		return nil, errors.New("s3: no Bucket")
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return nil, errors.New("s3: AccessKey and SecretKey are required")
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Region:    cfg.Region,
		Transport: cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("s3: bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
		}
		if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, fmt.Errorf("s3: creating bucket %q: %w", cfg.Bucket, err)
		}
	}
	return &Store{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

func (s *Store) blobKey(sum blob.Sum) string { return s.prefix + "blobs/" + sum.String() }

func (s *Store) ownerKey(sum blob.Sum, user int64) string {
	return s.prefix + "owners/" + sum.String() + "/" + strconv.FormatInt(user, 10)
}

func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// countReader counts what it reads and notes the end of its reader.
type countReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// Put implements blob.Store. The object store makes the object visible
// only once it is whole.
func (s *Store) Put(ctx context.Context, sum blob.Sum, r io.Reader, size int64) error {
	key := s.blobKey(sum)
	if info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{}); err == nil && info.Size == size {
		return nil
	} else if err != nil && !notFound(err) {
		return fmt.Errorf("s3: %w", err)
	}
	cr := &countReader{r: io.LimitReader(r, size)}
	_, err := s.c.PutObject(ctx, s.bucket, key, cr, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
	})
	if err != nil {
		if cr.eof && cr.n < size {
			return fmt.Errorf("%w: want %d bytes, read %d", blob.ErrSize, size, cr.n)
		}
		return fmt.Errorf("s3: %w", err)
	}
	// More bytes than size: the object holds a prefix of the content.
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		_ = s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
		return fmt.Errorf("%w: more than %d bytes", blob.ErrSize, size)
	}
	return nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, sum blob.Sum) (io.ReadCloser, int64, error) {
	obj, err := s.c.GetObject(ctx, s.bucket, s.blobKey(sum), minio.GetObjectOptions{})
	if err != nil {
		if notFound(err) {
			return nil, 0, blob.ErrNotFound
		}
		return nil, 0, fmt.Errorf("s3: %w", err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if notFound(err) {
			return nil, 0, blob.ErrNotFound
		}
		return nil, 0, fmt.Errorf("s3: %w", err)
	}
	return obj, info.Size, nil
}

// AddOwner implements blob.Store: a new object each time, so its
// Last-Modified is the time of the latest upload.
func (s *Store) AddOwner(ctx context.Context, sum blob.Sum, user int64) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.ownerKey(sum, user), strings.NewReader(""), 0, minio.PutObjectOptions{})
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}

// IsOwner implements blob.Store.
func (s *Store) IsOwner(ctx context.Context, sum blob.Sum, user int64) (bool, error) {
	_, err := s.c.StatObject(ctx, s.bucket, s.ownerKey(sum, user), minio.StatObjectOptions{})
	switch {
	case err == nil:
		return true, nil
	case notFound(err):
		return false, nil
	}
	return false, fmt.Errorf("s3: %w", err)
}

// Close implements blob.Store.
func (s *Store) Close() error { return nil }

var _ blob.Collector = (*Store)(nil)

// List implements blob.Collector: one listing, started after after.
func (s *Store) List(ctx context.Context, after blob.Sum, n int) ([]blob.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing's goroutine
	var out []blob.Info
	p := s.prefix + "blobs/"
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: p, StartAfter: p + after.String(), MaxKeys: min(n, 1000)}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3: %w", obj.Err)
		}
		sum, ok := blob.ParseSum(strings.TrimPrefix(obj.Key, p))
		if !ok {
			continue
		}
		out = append(out, blob.Info{Sum: sum, Size: obj.Size, Modified: obj.LastModified})
		if len(out) == n {
			break
		}
	}
	return out, nil
}

// owners lists the owner records of sum: key → Last-Modified.
func (s *Store) owners(ctx context.Context, sum blob.Sum) (map[string]time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(map[string]time.Time)
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "owners/" + sum.String() + "/", Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3: %w", obj.Err)
		}
		out[obj.Key] = obj.LastModified
	}
	return out, nil
}

// marked reports whether an owner record of sum is at or after before.
func (s *Store) marked(ctx context.Context, sum blob.Sum, before time.Time) (bool, map[string]time.Time, error) {
	owners, err := s.owners(ctx, sum)
	if err != nil {
		return false, nil, err
	}
	return blob.Marked(owners, before), owners, nil
}

// Remove implements blob.Collector. An object store has no rename: the
// blob is copied into trash/ (inside the store) and removed, then its
// marks are read once more; a mark renewed meanwhile copies it back. Times
// are the store's Last-Modified: before must allow for the skew between
// the store's clock and ours (the grace periods are hours).
func (s *Store) Remove(ctx context.Context, sum blob.Sum, before time.Time) (bool, error) {
	fresh, owners, err := s.marked(ctx, sum, before)
	if err != nil || fresh {
		return false, err
	}
	key := s.blobKey(sum)
	info, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if notFound(err) {
		return false, s.dropOwners(ctx, owners, before)
	}
	if err != nil {
		return false, fmt.Errorf("s3: %w", err)
	}
	if !info.LastModified.Before(before) {
		return false, nil
	}
	trash := s.prefix + "trash/" + sum.String() + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if _, err := s.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: trash},
		minio.CopySrcOptions{Bucket: s.bucket, Object: key}); err != nil {
		if notFound(err) {
			return false, nil // removed meanwhile
		}
		return false, fmt.Errorf("s3: %w", err)
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		_ = s.c.RemoveObject(ctx, s.bucket, trash, minio.RemoveObjectOptions{})
		return false, fmt.Errorf("s3: %w", err)
	}
	fresh, owners, err = s.marked(ctx, sum, before)
	if err != nil || fresh {
		// Uploaded again: back into place (over a copy the upload may
		// have stored meanwhile: the same content).
		if _, cerr := s.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: key},
			minio.CopySrcOptions{Bucket: s.bucket, Object: trash}); cerr != nil {
			return false, errors.Join(err, fmt.Errorf("s3: put back %s (kept as %s): %w", key, trash, cerr))
		}
		_ = s.c.RemoveObject(ctx, s.bucket, trash, minio.RemoveObjectOptions{})
		return false, err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, trash, minio.RemoveObjectOptions{}); err != nil {
		return false, fmt.Errorf("s3: %w", err)
	}
	return true, s.dropOwners(ctx, owners, before)
}

// dropOwners removes the owner records older than before.
func (s *Store) dropOwners(ctx context.Context, owners map[string]time.Time, before time.Time) error {
	for k, t := range owners {
		if t.Before(before) {
			if err := s.c.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
				return fmt.Errorf("s3: %w", err)
			}
		}
	}
	return nil
}

// Recover implements blob.Collector: it looks at up to 1,000 objects of
// trash/ a call.
func (s *Store) Recover(ctx context.Context, olderThan time.Time) (int, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := s.prefix + "trash/"
	var old []string
	for obj := range s.c.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true}) {
		if obj.Err != nil {
			return 0, fmt.Errorf("s3: %w", obj.Err)
		}
		if obj.LastModified.Before(olderThan) {
			old = append(old, obj.Key)
		}
		if len(old) == 1000 {
			break
		}
	}
	n := 0
	for _, k := range old {
		h, _, _ := strings.Cut(strings.TrimPrefix(k, p), "-")
		if sum, ok := blob.ParseSum(h); ok {
			_, err := s.c.StatObject(ctx, s.bucket, s.blobKey(sum), minio.StatObjectOptions{})
			if err != nil && !notFound(err) {
				return n, fmt.Errorf("s3: %w", err)
			}
			if notFound(err) {
				if _, err := s.c.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: s.blobKey(sum)},
					minio.CopySrcOptions{Bucket: s.bucket, Object: k}); err != nil {
					return n, fmt.Errorf("s3: %w", err)
				}
				n++
			}
		}
		if err := s.c.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
			return n, fmt.Errorf("s3: %w", err)
		}
	}
	return n, nil
}
