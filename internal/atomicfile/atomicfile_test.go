package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("got %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: got %v", fi.Mode().Perm())
	}
	// Same content and mode: the file is not rewritten.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); !fi.ModTime().Equal(old) {
		t.Fatal("unchanged content was rewritten")
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("got %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode: got %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	// A directory or a symlink is never replaced.
	os.Mkdir(filepath.Join(dir, "d"), 0o700)
	if err := WriteFile(filepath.Join(dir, "d"), []byte("x"), 0o600); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("over a directory: got %v", err)
	}
	os.Symlink(p, filepath.Join(dir, "l"))
	if err := WriteFile(filepath.Join(dir, "l"), []byte("x"), 0o600); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("over a symlink: got %v", err)
	}
}
