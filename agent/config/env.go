package config

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"
)

// Env is what checking a configuration looks up on the machine. A nil
// field means the machine's own: os/user (falling back to getent, for
// users and groups that only NSS knows when the agent is built without
// cgo), exec.LookPath, os.Stat and os.ReadFile. Tests set their own.
type Env struct {
	// LookupUser returns the uid of a user name. It should return a
	// user.UnknownUserError when there is no such user.
	LookupUser func(name string) (uid int, err error)
	// LookupGroup returns the gid of a group name. It should return a
	// user.UnknownGroupError when there is no such group.
	LookupGroup func(name string) (gid int, err error)
	// LookPath finds a command name in PATH, like exec.LookPath.
	LookPath func(file string) (string, error)
	// Stat is os.Stat.
	Stat func(name string) (os.FileInfo, error)
	// ReadFile is os.ReadFile; it reads ca_file.
	ReadFile func(name string) ([]byte, error)
}

// withDefaults returns e with its nil fields set to the machine's own.
func (e Env) withDefaults() Env {
	if e.LookupUser == nil {
		e.LookupUser = lookupUser
	}
	if e.LookupGroup == nil {
		e.LookupGroup = lookupGroup
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.Stat == nil {
		e.Stat = os.Stat
	}
	if e.ReadFile == nil {
		e.ReadFile = os.ReadFile
	}
	return e
}

// lookupUser is os/user's lookup, then getent's.
func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return strconv.Atoi(u.Uid)
	}
	if id, ok := getent("passwd", name); ok {
		return id, nil
	}
	return 0, err
}

// lookupGroup is os/user's lookup, then getent's.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err == nil {
		return strconv.Atoi(g.Gid)
	}
	if id, ok := getent("group", name); ok {
		return id, nil
	}
	return 0, err
}

// getentTimeout bounds one getent run.
const getentTimeout = 10 * time.Second

// getent looks name up in an NSS database (passwd or group) with the
// getent command and returns its numeric id. Without cgo, os/user only
// reads /etc/passwd and /etc/group, so users from LDAP or SSSD need this.
func getent(db, name string) (int, bool) {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, ": \t\n") {
		return 0, false
	}
	path, err := exec.LookPath("getent")
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), getentTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, db, name).Output()
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil || id < 0 {
			return 0, false
		}
		return id, true
	}
	return 0, false
}
