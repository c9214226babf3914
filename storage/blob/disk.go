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
	"strings"
	"sync/atomic"
	"time"
)

// Disk is a Store in a local directory:
//
//	<dir>/blobs/<first 2 hex digits>/<64 hex digits>   the content
//	<dir>/owners/<first 2 hex digits>/<64 hex digits>-<user id>  empty files
//	<dir>/tmp/                                          Puts in progress
//	<dir>/trash/<64 hex digits>-<n>                    blobs Remove moved out of the way
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
	for _, sub := range []string{"blobs", "owners", "tmp", "trash"} {
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
	d := &Disk{dir: dir}
	// Left over by a crash during a Remove: put back (a later run decides
	// again).
	if _, err := d.Recover(context.Background(), time.Now().Add(time.Hour)); err != nil {
		return nil, err
	}
	return d, nil
}

// Recover implements Collector.
func (d *Disk) Recover(ctx context.Context, olderThan time.Time) (int, error) {
	ents, err := os.ReadDir(filepath.Join(d.dir, "trash"))
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	n := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(olderThan) {
			continue // gone meanwhile, or a Remove at work
		}
		p := filepath.Join(d.dir, "trash", e.Name())
		h, _, _ := strings.Cut(e.Name(), "-")
		sum, ok := ParseSum(h)
		if _, err := os.Stat(d.blobPath(sum)); ok && errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(d.blobPath(sum)), 0o750); err != nil {
				return n, fmt.Errorf("blob: %w", err)
			}
			if err := os.Rename(p, d.blobPath(sum)); err != nil {
				return n, fmt.Errorf("blob: %w", err)
			}
			n++
			continue
		}
		_ = os.Remove(p)
	}
	return n, nil
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
		now := time.Now()
		if err := os.Chtimes(p, now, now); err != nil {
			return fmt.Errorf("blob: %w", err)
		}
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

var _ Collector = (*Disk)(nil)

// List implements Collector: it reads the blobs' directories in order,
// from the one of after.
func (d *Disk) List(ctx context.Context, after Sum, n int) ([]Info, error) {
	var out []Info
	start := after.String()
	for p := int(after[0]); p < 256 && len(out) < n; p++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := filepath.Join(d.dir, "blobs", fmt.Sprintf("%02x", p))
		ents, err := os.ReadDir(dir) // sorted by name
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
		for _, e := range ents {
			sum, ok := ParseSum(e.Name())
			if !ok || e.Name() <= start {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("blob: %w", err)
			}
			out = append(out, Info{Sum: sum, Size: fi.Size(), Modified: fi.ModTime()})
			if len(out) == n {
				break
			}
		}
	}
	return out, nil
}

// owners returns the owner records of sum with their times.
func (d *Disk) owners(sum Sum) (map[string]time.Time, error) {
	h := sum.String()
	dir := filepath.Join(d.dir, "owners", h[:2])
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	out := make(map[string]time.Time)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), h+"-") {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
		out[filepath.Join(dir, e.Name())] = fi.ModTime()
	}
	return out, nil
}

// marked reports whether an owner record of sum is at or after before.
func (d *Disk) marked(sum Sum, before time.Time) (bool, map[string]time.Time, error) {
	owners, err := d.owners(sum)
	if err != nil {
		return false, nil, err
	}
	return Marked(owners, before), owners, nil
}

// trashSeq names the files Remove moves away.
var trashSeq atomic.Int64

// Remove implements Collector: the blob is renamed into trash/, then its
// marks are read once more; a mark renewed meanwhile renames it back.
func (d *Disk) Remove(ctx context.Context, sum Sum, before time.Time) (bool, error) {
	final := d.blobPath(sum)
	fresh, owners, err := d.marked(sum, before)
	if err != nil || fresh {
		return false, err
	}
	st, err := os.Stat(final)
	if errors.Is(err, fs.ErrNotExist) {
		return false, d.dropOwners(owners, before)
	}
	if err != nil {
		return false, fmt.Errorf("blob: %w", err)
	}
	if !st.ModTime().Before(before) {
		return false, nil
	}
	trash := filepath.Join(d.dir, "trash", sum.String()+"-"+strconv.FormatInt(trashSeq.Add(1), 10))
	if err := os.Rename(final, trash); errors.Is(err, fs.ErrNotExist) {
		return false, nil // removed meanwhile
	} else if err != nil {
		return false, fmt.Errorf("blob: %w", err)
	}
	fresh, owners, err = d.marked(sum, before)
	if err != nil || fresh {
		// Uploaded again: back into place (over a copy the upload may
		// have stored meanwhile: the same content).
		if rerr := os.Rename(trash, final); rerr != nil {
			return false, errors.Join(err, fmt.Errorf("blob: %w", rerr))
		}
		return false, err
	}
	if err := os.Remove(trash); err != nil {
		return false, fmt.Errorf("blob: %w", err)
	}
	return true, d.dropOwners(owners, before)
}

// dropOwners removes the owner records older than before.
func (d *Disk) dropOwners(owners map[string]time.Time, before time.Time) error {
	for p, t := range owners {
		if t.Before(before) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("blob: %w", err)
			}
		}
	}
	return nil
}
