package midentity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certvault/certvault/internal/atomicfile"
)

// needRoot skips tests that chown files to other users.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("writing files for another user needs root")
	}
}

// owner returns the uid owning path and its permission bits.
func owner(t *testing.T, path string) (int, fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
}

func TestFormatAndParseEnvFile(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != secretLen || !validSecret(s) {
		t.Fatalf("NewSecret() = %d characters, valid %v; want %d valid", len(s), validSecret(s), secretLen)
	}
	got, err := ParseEnvFile(FormatEnvFile(s))
	if err != nil || got != s {
		t.Fatalf("ParseEnvFile(FormatEnvFile(s)) = %q, %v; want s back", got, err)
	}
	if !strings.HasSuffix(string(FormatEnvFile(s)), "\n"+EnvVar+"="+s+"\n") {
		t.Fatalf("the file does not end with the assignment line:\n%s", FormatEnvFile(s))
	}
	for _, tc := range []struct{ name, data, want string }{
		{"empty", "", "no IDENTITY_HEADER= line"},
		{"short", EnvVar + "=abc\n", "line 1: the value is not 43 base64url characters"},
		{"quoted", EnvVar + "=\"" + s + "\"\n", "line 1: the value is not"},
		{"padded standard base64", EnvVar + "=" + strings.ReplaceAll(s[:42], "-", "+") + "=\n", "line 1: the value is not"},
		{"twice", EnvVar + "=" + s + "\n" + EnvVar + "=" + s + "\n", "IDENTITY_HEADER is set twice (line 2)"},
		{"another variable", "# c\nPATH=/bin\n", "line 2 is not a comment or IDENTITY_HEADER="},
		{"export", "export " + EnvVar + "=" + s + "\n", "line 1 is not a comment"},
		{"too long", strings.Repeat("#\n", 3000), "longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnvFile([]byte(tc.data))
			if !errors.Is(err, ErrBadEnvFile) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadEnvFile saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), s) {
				t.Fatalf("the error holds the secret: %v", err)
			}
		})
	}
	// CRLF and ';' comments, as systemd reads them.
	if got, err := ParseEnvFile([]byte("; a comment\r\n\r\n" + EnvVar + "=" + s + "\r\n")); err != nil || got != s {
		t.Fatalf("CRLF file: %q, %v", got, err)
	}
}

func TestEnsureEnvFile(t *testing.T) {
	needRoot(t)
	const uid = 4242
	dir := filepath.Join(t.TempDir(), "identity")
	path := filepath.Join(dir, "app.env")

	// A new file: mode 0400, owned by the user, in a directory made 0755.
	s1, why, err := ensureEnvFile(path, uid, "")
	if err != nil || !validSecret(s1) || why != whyCreated {
		t.Fatalf("first write: %q %q %v", s1, why, err)
	}
	if u, m := owner(t, path); u != uid || m != 0o400 {
		t.Fatalf("env file owned by %d mode %04o, want %d 0400", u, m, uid)
	}
	if _, m := owner(t, dir); m != 0o755 {
		t.Fatalf("directory mode %04o, want 0755", m)
	}

	// An agent that restarts keeps a valid file's secret.
	s2, why, err := ensureEnvFile(path, uid, "")
	if err != nil || s2 != s1 || why != "" {
		t.Fatalf("restart: got %q %q %v, want the same secret and nothing done", s2, why, err)
	}

	// Invalid files get a new secret.
	for _, tc := range []struct {
		name  string
		spoil func()
		want  string
	}{
		{"mode", func() { chmod(t, path, 0o644) }, "mode 0644, not 0400"},
		{"owner", func() { chown(t, path, 4243) }, "not owned by uid 4242"},
		{"content", func() { rewrite(t, path, "IDENTITY_HEADER=x\n", uid) }, "the value is not 43 base64url characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, _, err := ensureEnvFile(path, uid, "")
			if err != nil {
				t.Fatal(err)
			}
			tc.spoil()
			s, why, err := ensureEnvFile(path, uid, "")
			if err != nil || s == old || !strings.HasPrefix(why, "replaced with a new secret: ") || !strings.Contains(why, tc.want) {
				t.Fatalf("got %q %q %v; want a new secret because %q", s, why, err, tc.want)
			}
			if u, m := owner(t, path); u != uid || m != 0o400 {
				t.Fatalf("env file owned by %d mode %04o, want %d 0400", u, m, uid)
			}
		})
	}

	// A link at the path is not followed, nor replaced.
	symlink(t, path)
	if _, _, err := ensureEnvFile(path, uid, ""); !errors.Is(err, atomicfile.ErrNotRegular) {
		t.Fatalf("a symlink at the path: got %v, want ErrNotRegular", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	// A secret being served is put back as it was.
	cur, _, err := ensureEnvFile(path, uid, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s, why, err := ensureEnvFile(path, uid, cur)
	if err != nil || s != cur || why != "put back the secret served: the file did not exist" {
		t.Fatalf("put back: got %q %q %v, want the served secret back", s, why, err)
	}
	if got, err := readEnvFile(path, uid); err != nil || got != cur {
		t.Fatalf("the file holds %q (%v), want the served secret", got, err)
	}

	// A directory other users can write is refused.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	chmod(t, open, 0o777)
	if _, _, err := ensureEnvFile(filepath.Join(open, "a.env"), uid, ""); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("in a 0777 directory: got %v, want ErrUnsafeDir", err)
	}
	// A directory at the file's path is not replaced.
	if err := os.Mkdir(filepath.Join(dir, "d.env"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ensureEnvFile(filepath.Join(dir, "d.env"), uid, ""); err == nil {
		t.Fatal("a directory at the env file's path was accepted")
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Chown(p, uid, 0); err != nil {
		t.Fatal(err)
	}
}

func rewrite(t *testing.T, p, data string, uid int) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o400); err != nil {
		t.Fatal(err)
	}
	chown(t, p, uid)
}

// symlink replaces p with a link to a valid env file elsewhere.
func symlink(t *testing.T, p string) {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other.env")
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, FormatEnvFile(s), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, p); err != nil {
		t.Fatal(err)
	}
}
