package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// dirSink keeps objects as files under a directory, keys as relative paths.
type dirSink struct{ root string }

func openDir(dir string) (*Sink, error) {
	if dir == "" {
		return nil, errors.New("sink: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	// Create it now: a mistyped or unwritable directory should stop the
	// worker at start, not fail every page.
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &Sink{b: &dirSink{root: abs}, url: "file://" + filepath.ToSlash(abs)}, nil
}

func (d *dirSink) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.root, tmpPrefix+"check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

func (d *dirSink) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// put writes a temporary file next to the target, syncs it and renames it
// over the target: readers see the old object or the new one, never half,
// and a crash leaves at worst a temporary file, which List ignores.
func (d *dirSink) put(ctx context.Context, key string, body []byte, ct string) error {
	return d.putStream(ctx, key, bytes.NewReader(body), ct)
}

func (d *dirSink) putStream(ctx context.Context, key string, r io.Reader, _ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := d.path(key)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return nil
}

func (d *dirSink) delete(_ context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *dirSink) get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return b, err
}

func (d *dirSink) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk only the deepest directory the prefix names, then filter by
	// the whole prefix (a prefix may end inside a file name).
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = d.path(path.Clean(prefix[:i]))
		if rel, err := filepath.Rel(d.root, start); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("invalid prefix %q", prefix)
		}
	}
	var objs []ObjectInfo
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll // nothing stored there yet
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walked
		} else if err != nil {
			return err
		}
		objs = append(objs, ObjectInfo{Key: key, Size: info.Size(), LastModified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// S3 lists in byte order of keys; a directory walk does not quite
	// ("a-b" sorts before "a/b" as a key, after it as a path).
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}
