package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Disk is a Store in a local directory:
//
//	<dir>/blobs/<first 2 hex digits>/<64 hex digits>   the content
//	<dir>/owners/<first 2 hex digits>/<64 hex digits>-<user id>  empty files
//	<dir>/tmp/                                          Puts in progress
//
// Every path is built from a Sum's hex and a number, never from a name a
// client chose. A Put writes a temporary file, fsyncs it, renames it into
// place and fsyncs the directory, so a blob is there whole or not at all.
type Disk struct {
	dir string
}

var _ Store = (*Disk)(nil)

// OpenDisk opens (creating it if need be) a Disk store in dir.
func OpenDisk(dir string) (*Disk, error) {
	for _, sub := range []string{"blobs", "owners", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	// Left over by a crash during a Put.
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(dir, "tmp", e.Name()))
		}
	}
	return &Disk{dir: dir}, nil
}

// Dir is where the store keeps its files.
func (d *Disk) Dir() string { return d.dir }

func (d *Disk) blobPath(sum Sum) string {
	h := sum.String()
	return filepath.Join(d.dir, "blobs", h[:2], h)
}

// ownerPath is the empty file that says user uploaded sum: a directory
// entry and an inode, no data block.
func (d *Disk) ownerPath(sum Sum, user int64) string {
	h := sum.String()
	return filepath.Join(d.dir, "owners", h[:2], h+"-"+strconv.FormatInt(user, 10))
}

// Put implements Store.
func (d *Disk) Put(ctx context.Context, sum Sum, r io.Reader, size int64) error {
	final := d.blobPath(sum)
	if st, err := os.Stat(final); err == nil && st.Size() == size {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "put-*")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("%w: want %d bytes, read %d", ErrSize, size, n)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return syncDir(filepath.Dir(final))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// TmpDir is the directory of Puts in progress: a file written there can
// be adopted (Adopt) without a copy.
func (d *Disk) TmpDir() string { return filepath.Join(d.dir, "tmp") }

// Adopt is Put of a whole file that the caller wrote and fsynced already:
// it is renamed into place (copied if it is on another file system). The
// file is gone from path afterwards, or left for the caller to remove.
func (d *Disk) Adopt(ctx context.Context, sum Sum, path string, size int64) error {
	final := d.blobPath(sum)
	if st, err := os.Stat(final); err == nil && st.Size() == size {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if st.Size() != size {
		return fmt.Errorf("%w: want %d bytes, the file has %d", ErrSize, size, st.Size())
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(path, final); err == nil {
		return syncDir(filepath.Dir(final))
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	return d.Put(ctx, sum, f, size)
}

// Open implements Store.
func (d *Disk) Open(_ context.Context, sum Sum) (io.ReadCloser, int64, error) {
	f, err := os.Open(d.blobPath(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	return f, st.Size(), nil
}

// AddOwner implements Store.
func (d *Disk) AddOwner(_ context.Context, sum Sum, user int64) error {
	p := d.ownerPath(sum, user)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// IsOwner implements Store.
func (d *Disk) IsOwner(_ context.Context, sum Sum, user int64) (bool, error) {
	_, err := os.Stat(d.ownerPath(sum, user))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("blob: %w", err)
}

// Close implements Store.
func (d *Disk) Close() error { return nil }
