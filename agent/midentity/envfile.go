package midentity

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/certvault/certvault/internal/atomicfile"
)

// EnvVar is the environment variable the managed-identity libraries read
// the header secret from, and the one variable an env file sets.
const EnvVar = "IDENTITY_HEADER"

// secretBytes is the size of a header secret before encoding; encoded
// (base64url, no padding) it is secretLen characters.
const (
	secretBytes = 32
	secretLen   = 43
)

// maxEnvFile bounds what is read of an existing env file.
const maxEnvFile = 4096

// envFileMode is the mode of an env file: only its owner reads it.
const envFileMode os.FileMode = 0o400

// envFileHeader is the comment at the top of every env file.
const envFileHeader = "# The managed-identity header secret of certvault-agent, for a systemd\n" +
	"# EnvironmentFile= (or: set -a; . THIS_FILE; set +a). Written by the agent;\n" +
	"# a file that is not valid is replaced with a new secret at its start.\n"

// NewSecret returns a new header secret: 32 random bytes, base64url
// without padding.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make header secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// validSecret reports whether s is a header secret as NewSecret makes
// them.
func validSecret(s string) bool {
	if len(s) != secretLen {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == secretBytes
}

// FormatEnvFile returns the content of an env file for secret: a comment
// and the line IDENTITY_HEADER=SECRET. A base64url secret needs no
// quoting in systemd's EnvironmentFile syntax nor in a shell.
func FormatEnvFile(secret string) []byte {
	return []byte(envFileHeader + EnvVar + "=" + secret + "\n")
}

// ParseEnvFile returns the header secret in an env file's content. It
// takes comment lines ('#' or ';' first, as systemd does), blank lines
// and exactly one line IDENTITY_HEADER=SECRET whose SECRET is as
// NewSecret makes them; anything else is ErrBadEnvFile, with a reason
// that never holds the file's content.
func ParseEnvFile(data []byte) (string, error) {
	if len(data) > maxEnvFile {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadEnvFile, maxEnvFile)
	}
	secret, found := "", false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
		case line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, EnvVar+"="):
			if found {
				return "", fmt.Errorf("%w: %s is set twice (line %d)", ErrBadEnvFile, EnvVar, n)
			}
			secret, found = strings.TrimPrefix(line, EnvVar+"="), true
			if !validSecret(secret) {
				return "", fmt.Errorf("%w: line %d: the value is not %d base64url characters", ErrBadEnvFile, n, secretLen)
			}
		default:
			return "", fmt.Errorf("%w: line %d is not a comment or %s=", ErrBadEnvFile, n, EnvVar)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadEnvFile, err)
	}
	if !found {
		return "", fmt.Errorf("%w: no %s= line", ErrBadEnvFile, EnvVar)
	}
	return secret, nil
}

// readEnvFile returns the secret of the env file at path when it is
// valid: a regular file (not a link), owned by uid, mode 0400, with one
// link, as ParseEnvFile takes it. The error says why not.
func readEnvFile(path string, uid int) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("open env file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat env file: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%w: not a regular file", ErrBadEnvFile)
	case !ok || int(st.Uid) != uid:
		return "", fmt.Errorf("%w: not owned by uid %d", ErrBadEnvFile, uid)
	case fi.Mode().Perm() != envFileMode:
		return "", fmt.Errorf("%w: mode %04o, not %04o", ErrBadEnvFile, fi.Mode().Perm(), envFileMode)
	case st.Nlink != 1:
		return "", fmt.Errorf("%w: it has %d hard links", ErrBadEnvFile, st.Nlink)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return "", fmt.Errorf("read env file: %w", err)
	}
	return ParseEnvFile(data)
}

// whyCreated is ensureEnvFile's why for a file that did not exist.
const whyCreated = "created with a new secret"

// ensureEnvFile makes the env file at path hold a valid secret for the
// user uid and returns it. With keep set (the secret the agent serves
// already), the file is made to hold keep; otherwise a valid file's
// secret is kept (so that applications need not restart when the agent
// does), and a missing or invalid one gets a new secret. why says what
// was done: "" for nothing, whyCreated, or why a file was replaced.
func ensureEnvFile(path string, uid int, keep string) (secret, why string, err error) {
	dir := filepath.Dir(path)
	if err := safeDir(dir); err != nil {
		return "", "", err
	}
	cur, rerr := readEnvFile(path, uid)
	switch {
	case keep != "" && rerr == nil && cur == keep:
		return keep, "", nil
	case keep != "":
		secret, why = keep, "put back the secret served: "+reason(rerr, "it held another secret")
	case rerr == nil:
		return cur, "", nil
	default:
		if secret, err = NewSecret(); err != nil {
			return "", "", err
		}
		why = whyCreated
		if !errors.Is(rerr, fs.ErrNotExist) {
			why = "replaced with a new secret: " + reason(rerr, "")
		}
	}
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("write env file %s: %w", path, atomicfile.ErrNotRegular)
	}
	if err := atomicfile.WriteFileOwner(path, FormatEnvFile(secret), envFileMode, atomicfile.Owner{UID: uid, GID: 0}); err != nil {
		return "", "", fmt.Errorf("write env file: %w", err)
	}
	return secret, why, nil
}

// reason describes why an env file was not taken as it was.
func reason(err error, otherwise string) string {
	switch {
	case err == nil:
		return otherwise
	case errors.Is(err, fs.ErrNotExist):
		return "the file did not exist"
	}
	return err.Error()
}

// safeDir creates dir (0755) when missing and checks that no one but
// root or the agent can change what is in it: it is a directory, owned
// by root or the agent's user, and not writable by group or others.
// Otherwise another user could swap the files the agent writes there.
func safeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("make directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve directory: %w", err)
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return fmt.Errorf("stat directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s: %w: not a directory", dir, ErrUnsafeDir)
	case !ok || (st.Uid != 0 && int(st.Uid) != os.Geteuid()):
		return fmt.Errorf("%s: %w: owned by uid %d, not root", dir, ErrUnsafeDir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s: %w: mode %04o lets other users change it (chmod go-w it, or choose a directory of the agent's own)", dir, ErrUnsafeDir, fi.Mode().Perm())
	}
	return nil
}
