// Package atomicfile writes files so that a reader sees the old content or
// the new, never a mix, and a crash leaves no half-written file behind. It
// does not manage versioned directories or symlink swaps.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular means the target exists and is not a regular file; it is
// never replaced.
var ErrNotRegular = errors.New("atomicfile: target is not a regular file")

// WriteFile writes data to path through a temporary file in the same
// directory: create, chmod, write, fsync, close, rename, fsync the
// directory. It refuses to replace a non-regular file and skips the write
// when the file already holds data with the same mode.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, nil)
}

// Owner is a file's owner: a uid and a gid.
type Owner struct{ UID, GID int }

// WriteFileOwner is WriteFile for a file owned by owner: the temporary
// file is chowned after its chmod and before it gets content, so that
// the content is never readable by anyone the final file does not let
// read it. The write is skipped when the file already holds data with
// the same mode and owner. Changing the owner needs the privilege to
// (root, or CAP_CHOWN).
func WriteFileOwner(path string, data []byte, mode os.FileMode, owner Owner) error {
	return write(path, data, mode, &owner)
}

// write is WriteFile and WriteFileOwner; owner nil leaves the owner as
// the process creates it.
func write(path string, data []byte, mode os.FileMode, owner *Owner) error {
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("write %s: %w", path, ErrNotRegular)
		}
		if fi.Mode().Perm() == mode.Perm() && (owner == nil || ownedBy(fi, *owner)) {
			if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
				return nil
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if owner != nil {
		if err := tmp.Chown(owner.UID, owner.GID); err != nil {
			tmp.Close()
			return fmt.Errorf("chown %s: %w", tmp.Name(), err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
