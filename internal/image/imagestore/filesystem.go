package imagestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/ctxio"
)

// Filesystem keeps each image as one file, <dir>/<imageID>, like Glance's
// filesystem store. Writes go to a temp file in the same directory and are
// renamed into place once synced, so a reader never sees partial data and a
// crash mid-upload leaves at most a ".tmp-" file that no location points to.
type Filesystem struct {
	id  string
	dir string
}

var _ Store = (*Filesystem)(nil)

// NewFilesystem returns a store keeping data under dir, creating it.
func NewFilesystem(id, dir string) (*Filesystem, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filesystem store %s: %w", id, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem store %s: %w", id, err)
	}
	f := &Filesystem{id: id, dir: abs}
	f.removeStaleTemps(time.Now().Add(-staleTempAge))
	return f, nil
}

// staleTempAge is how long a temp file may go unwritten before it counts
// as left by a crashed upload. Live uploads touch theirs constantly.
const staleTempAge = 24 * time.Hour

// removeStaleTemps deletes temp files of uploads that a crash
// interrupted, so that restarting reclaims their space.
func (f *Filesystem) removeStaleTemps(before time.Time) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
			os.Remove(filepath.Join(f.dir, e.Name()))
		}
	}
}

// ID implements Store.
func (f *Filesystem) ID() string { return f.id }

// Description implements Store.
func (f *Filesystem) Description() string { return "Filesystem store at " + f.dir }

// ReadOnly implements Store.
func (f *Filesystem) ReadOnly() bool { return false }

// Put implements Store.
func (f *Filesystem) Put(ctx context.Context, imageID string, r io.Reader) (loc Location, n int64, err error) {
	if !validName(imageID) {
		return Location{}, 0, fmt.Errorf("put %q: invalid image id", imageID)
	}
	tmp, err := os.CreateTemp(f.dir, ".tmp-"+imageID+"-")
	if err != nil {
		return Location{}, 0, fmt.Errorf("put %s: %w", imageID, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err = io.Copy(tmp, ctxio.Reader(ctx, r))
	if err != nil {
		return Location{}, n, fmt.Errorf("put %s: %w", imageID, mapFull(err))
	}
	if err = tmp.Sync(); err != nil {
		return Location{}, n, fmt.Errorf("put %s: sync: %w", imageID, mapFull(err))
	}
	if err = tmp.Close(); err != nil {
		return Location{}, n, fmt.Errorf("put %s: close: %w", imageID, err)
	}
	if err = ctx.Err(); err != nil {
		return Location{}, n, err
	}
	final := filepath.Join(f.dir, imageID)
	if err = os.Rename(tmp.Name(), final); err != nil {
		return Location{}, n, fmt.Errorf("put %s: %w", imageID, err)
	}
	if err = syncDir(f.dir); err != nil {
		os.Remove(final)
		return Location{}, n, fmt.Errorf("put %s: sync dir: %w", imageID, err)
	}
	return Location{Store: f.id, URL: (&url.URL{Scheme: "file", Path: final}).String()}, n, nil
}

func mapFull(err error) error {
	if errors.Is(err, errNoSpace) {
		return fmt.Errorf("%w: %v", ErrFull, err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// path resolves loc to a file inside the store's directory; locations
// pointing elsewhere are refused so a forged URL cannot read host files.
func (f *Filesystem) path(loc Location) (string, error) {
	u, err := url.Parse(loc.URL)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("location %q is not a file URL", loc.URL)
	}
	p := filepath.Clean(u.Path)
	if filepath.Dir(p) != f.dir || !validName(filepath.Base(p)) {
		return "", fmt.Errorf("location %q is outside store %s", loc.URL, f.id)
	}
	return p, nil
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00") && !strings.HasPrefix(s, ".")
}

// Get implements Store.
func (f *Filesystem) Get(ctx context.Context, loc Location, offset, length int64) (io.ReadCloser, error) {
	p, err := f.path(loc)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", loc.URL, err)
	}
	if offset > 0 {
		if _, err := file.Seek(offset, io.SeekStart); err != nil {
			file.Close()
			return nil, fmt.Errorf("get %s: %w", loc.URL, err)
		}
	}
	if length < 0 {
		return file, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(file, length), file}, nil
}

// Delete implements Store.
func (f *Filesystem) Delete(ctx context.Context, loc Location) error {
	p, err := f.path(loc)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", loc.URL, err)
	}
	return nil
}
