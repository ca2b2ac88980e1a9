package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stat is os.Stat that fails the test on an error.
func stat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	return fi
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "one" {
		t.Fatalf("read back: got %q (%v), want %q", b, err, "one")
	}
	if fi := stat(t, p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: got %v", fi.Mode().Perm())
	}
	// Same content and mode: the file is not rewritten.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatalf("set an old mtime: %v", err)
	}
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi := stat(t, p); !fi.ModTime().Equal(old) {
		t.Fatal("unchanged content was rewritten")
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "two" {
		t.Fatalf("read back: got %q (%v), want %q", b, err, "two")
	}
	if fi := stat(t, p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode: got %v", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list the directory: %v", err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	// A directory or a symlink is never replaced.
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatalf("make a directory: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "d"), []byte("x"), 0o600); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("over a directory: got %v", err)
	}
	if err := os.Symlink(p, filepath.Join(dir, "l")); err != nil {
		t.Fatalf("make a symlink: %v", err)
	}
	if err := WriteFile(filepath.Join(dir, "l"), []byte("x"), 0o600); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("over a symlink: got %v", err)
	}
}

// TestWriteFileOwner writes a file for another user (the tests run as
// root; elsewhere the chown is refused and the test skips).
func TestWriteFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	owner := Owner{UID: 4242, GID: 4243}
	if err := WriteFileOwner(p, []byte("one"), 0o400, owner); err != nil {
		t.Fatal(err)
	}
	fi := stat(t, p)
	if !ownedBy(fi, owner) || fi.Mode().Perm() != 0o400 {
		t.Fatalf("got mode %v, owned by %v: %v; want 0400 and %v", fi.Mode().Perm(), owner, ownedBy(fi, owner), owner)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatalf("set an old mtime: %v", err)
	}
	if err := WriteFileOwner(p, []byte("one"), 0o400, owner); err != nil {
		t.Fatal(err)
	}
	if fi := stat(t, p); !fi.ModTime().Equal(old) {
		t.Fatal("unchanged content, mode and owner were rewritten")
	}
	// Another owner is a change.
	if err := WriteFileOwner(p, []byte("one"), 0o400, Owner{UID: 4244, GID: 4243}); err != nil {
		t.Fatal(err)
	}
	if fi := stat(t, p); !ownedBy(fi, Owner{UID: 4244, GID: 4243}) {
		t.Fatal("the new owner was not set")
	}
}
