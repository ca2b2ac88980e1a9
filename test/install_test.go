//go:build install

package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/debpkg"
	"github.com/certvault/certvault/test/testcluster"
)

// The packaged paths the test checks and cleans up.
const (
	etcDir      = "/etc/certvault"
	dataDir     = "/var/lib/certvault"
	agentState  = "/var/lib/certvault-agent"
	serverUnit  = "/lib/systemd/system/certvaultd.service"
	agentUnit   = "/lib/systemd/system/certvault-agent.service"
	agentConfig = "/etc/certvault/agent.yaml"
)

// TestInstall is the install test (make test-install; root, as CI runs
// it). It builds the packages twice with make package and compares their
// bytes, lints them (lintian, where installed: no errors), installs the
// server and the amd64 agent package with dpkg, checks the user, paths,
// owners, modes and conffile, verifies the units (systemd-analyze, where
// installed), starts certvaultd as the unit's ExecStart would (as the
// packaged user, with the packaged configuration), joins the packaged
// agent, delivers a certificate to it, upgrades (the same package again:
// a local edit of the conffile and the data kept, nothing started), then
// removes (data kept) and purges (user and data gone) both packages and
// checks what is left.
//
// It refuses to run (skips) where a certvault package, user or directory
// is already present, and its cleanup purges what it installed whatever
// happens.
func TestInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestInstall installs packages with dpkg: run it as root (make test-install)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("TestInstall needs dpkg (a Debian machine)")
	}
	for _, pkg := range []string{"certvault", "certvault-agent"} {
		if st := dpkgStatus(t, pkg); st != "" {
			t.Skipf("package %s is on this machine already (dpkg status %q); TestInstall only installs and purges its own: remove it first", pkg, st)
		}
	}
	if _, err := user.Lookup("certvault"); err == nil {
		t.Skip("a user certvault exists that TestInstall did not create; it would delete it on purge: remove it first")
	}
	for _, p := range []string{etcDir, dataDir, agentState} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists; TestInstall would delete it: move it away first", p)
		}
	}
	began := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("repository: %v", err)
	}

	// Build twice: the same tree gives the same bytes.
	dist := buildPackages(t, root)
	again := buildPackages(t, root)
	if len(dist) != len(debpkg.Packages) {
		t.Fatalf("make package wrote %v, want %d packages", dist, len(debpkg.Packages))
	}
	for i := range dist {
		a, errA := os.ReadFile(dist[i])
		b, errB := os.ReadFile(again[i])
		if errA != nil || errB != nil {
			t.Fatalf("read the packages: %v %v", errA, errB)
		}
		if filepath.Base(dist[i]) != filepath.Base(again[i]) || !bytes.Equal(a, b) {
			t.Errorf("two builds differ: %s (%d bytes) and %s (%d bytes)", dist[i], len(a), again[i], len(b))
		}
	}
	t.Logf("make package twice: %v; %s", time.Since(began).Round(time.Second), strings.Join(dist, " "))
	server, agentDeb := dist[0], dist[1]

	lint(t, dist)

	// From here on the machine changes: the cleanup purges whatever
	// happens (it runs after the processes' own cleanups, registered
	// later).
	t.Cleanup(func() { purgeAll(t) })
	dpkg(t, "--install", server, agentDeb)
	for _, pkg := range []string{"certvault", "certvault-agent"} {
		if st := dpkgStatus(t, pkg); st != "ii" {
			t.Fatalf("after dpkg --install, %s has status %q, want ii", pkg, st)
		}
	}

	u, err := user.Lookup("certvault")
	if err != nil {
		t.Fatalf("the package made no user certvault: %v", err)
	}
	uid, gid := atoi(t, u.Uid), atoi(t, u.Gid)
	if uid == 0 || uid >= 1000 || u.HomeDir != dataDir {
		t.Errorf("user certvault: uid %d home %q, want a system uid (1-999) and home %s", uid, u.HomeDir, dataDir)
	}
	if shell := passwdShell(t, "certvault"); shell != "/usr/sbin/nologin" {
		t.Errorf("user certvault: shell %q, want /usr/sbin/nologin", shell)
	}
	if g, err := user.LookupGroup("certvault"); err != nil || g.Gid != u.Gid {
		t.Errorf("group certvault: %v %v, want the user's primary group", g, err)
	}
	for _, want := range []struct {
		path     string
		mode     fs.FileMode
		uid, gid int
	}{
		{"/usr/bin/certvaultd", 0o755, 0, 0},
		{"/usr/bin/certvault", 0o755, 0, 0},
		{"/usr/bin/certvault-agent", 0o755, 0, 0},
		{etcDir, fs.ModeDir | 0o755, 0, 0},
		{"/etc/certvault/certvaultd.yaml", 0o644, 0, 0},
		{dataDir, fs.ModeDir | 0o700, uid, gid},
		{agentState, fs.ModeDir | 0o700, 0, 0},
		{serverUnit, 0o644, 0, 0},
		{agentUnit, 0o644, 0, 0},
		{"/usr/lib/sysusers.d/certvault.conf", 0o644, 0, 0},
		{"/usr/lib/tmpfiles.d/certvault.conf", 0o644, 0, 0},
		{"/usr/lib/tmpfiles.d/certvault-agent.conf", 0o644, 0, 0},
		{"/usr/share/doc/certvault/install.md", 0o644, 0, 0},
		{"/usr/share/doc/certvault-agent/examples/agent.yaml", 0o644, 0, 0},
	} {
		checkOwner(t, want.path, want.mode, want.uid, want.gid)
	}
	if cf := dpkgQuery(t, "${Conffiles}", "certvault"); !strings.Contains(cf, "/etc/certvault/certvaultd.yaml ") {
		t.Errorf("certvault conffiles %q, want /etc/certvault/certvaultd.yaml", cf)
	}
	checkStatic(t, "/usr/bin/certvault-agent")
	for _, unit := range []string{"certvaultd.service", "certvault-agent.service"} {
		if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/" + unit); err == nil {
			t.Errorf("%s is enabled after install; enabling is the operator's", unit)
		}
	}
	checkHardening(t)
	verifyUnits(t)

	// The packaged configuration is valid, as the service user sees it.
	if out, err := asUser(exec.Command("/usr/bin/certvaultd", "check-config"), uid, gid).CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration valid: /etc/certvault/certvaultd.yaml") {
		t.Errorf("certvaultd check-config as certvault: %v\n%s", err, out)
	}

	// certvaultd as the unit starts it.
	unit := readUnit(t, serverUnit)
	argv := execStart(t, unit)
	api, raftAddr := "127.0.0.1:8443", "127.0.0.1:8201"
	if busy(api) || busy(raftAddr) {
		api, raftAddr = testcluster.FreeAddr(t), testcluster.FreeAddr(t)
		argv = append(argv, "--listen", api, "--raft-listen", raftAddr)
		t.Logf("127.0.0.1:8443 or :8201 is taken on this machine: adding --listen %s --raft-listen %s to the unit's command", api, raftAddr)
	}
	t.Logf("starting as user %s: %s", unit.get("User"), strings.Join(argv, " "))
	vault := startService(t, "certvaultd", argv, uid, gid, dataDir)
	c := &testcluster.Cluster{T: t, Nodes: []*testcluster.Node{{ID: "packaged", Dir: dataDir, API: api}}, CACert: filepath.Join(dataDir, "ca.pem"), CLIBin: "/usr/bin/certvault"}
	waitUntil(t, 90*time.Second, "the packaged certvaultd ready", func() (bool, string) {
		if vault.exited() {
			t.Fatalf("certvaultd exited:\n%s", vault.log.String())
		}
		code, body, err := readyz(c.CACert, "https://"+api+"/readyz")
		return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
	})
	tok, err := os.ReadFile(filepath.Join(dataDir, "root-token"))
	if err != nil {
		t.Fatalf("root token: %v", err)
	}
	c.Token = strings.TrimSpace(string(tok))
	testcluster.KnownSecret(c.Token)
	checkDataOwned(t, uid)

	// An agent from its package joins and gets a certificate.
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=www.example.com", "--san", "www.example.com", "--out", policy)
	mustCLI(t, c, "cert", "create", "www", "--policy", policy)
	mustCLI(t, c, "cert", "operation", "www", "--wait")
	serial := currentSerial(t, c, "www")
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/www")
	joinTok, fp, _ := agentJoinToken(t, c, "--group", "web")
	agentID := joinAgent(t, "/usr/bin/certvault-agent", c.Nodes[0].URL(), joinTok, fp, agentState, "--name", "packaged-agent")
	checkOwner(t, agentState, fs.ModeDir|0o700, 0, 0)
	tlsDir := filepath.Join(dir, "tls", "www")
	cfg := fmt.Sprintf("vault: %s\nca_file: %s/ca.pem\nstate_dir: %s\ncertificates:\n  - name: www\n    dir: %s\n    files: {fullchain: fullchain.pem, key: key.pem}\n    mode: \"0640\"\n",
		c.Nodes[0].URL(), agentState, agentState, tlsDir)
	if err := os.WriteFile(agentConfig, []byte(cfg), 0o644); err != nil {
		t.Fatalf("write %s: %v", agentConfig, err)
	}
	if out, err := exec.Command("/usr/bin/certvault-agent", "check-config", "--config", agentConfig).CombinedOutput(); err != nil {
		t.Fatalf("certvault-agent check-config: %v\n%s", err, out)
	}
	agent := startService(t, "certvault-agent", execStart(t, readUnit(t, agentUnit)), 0, 0, "/")
	waitUntil(t, 60*time.Second, "the agent installs www", func() (bool, string) {
		if agent.exited() {
			t.Fatalf("certvault-agent exited:\n%s", agent.log.String())
		}
		got, err := leafSerial(filepath.Join(tlsDir, "fullchain.pem"), filepath.Join(tlsDir, "key.pem"))
		return err == nil && got == serial, fmt.Sprintf("serial %q (%v), want %s", got, err, serial)
	})
	waitUntil(t, 30*time.Second, "the vault records the delivery", func() (bool, string) {
		out, errOut, code := c.CLI("agent", "status", agentID)
		return code == 0 && strings.Contains(out, "installed"), out + errOut
	})
	agent.stop(t)
	vault.stop(t)

	// An upgrade (here the same package again: dpkg runs the same
	// scripts, with the old version in postinst's $2) keeps a local edit
	// of the conffile and the data, and starts nothing that was stopped.
	conf := "/etc/certvault/certvaultd.yaml"
	edited, err := os.ReadFile(conf)
	if err != nil {
		t.Fatalf("read %s: %v", conf, err)
	}
	edited = append(edited, "# a local edit the upgrade must keep\nlog-level: debug\n"...)
	if err := os.WriteFile(conf, edited, 0o644); err != nil {
		t.Fatalf("edit %s: %v", conf, err)
	}
	out := dpkg(t, "--install", server)
	if strings.Contains(out, "installed; not enabled") {
		t.Errorf("the upgrade's postinst took it for a first install:\n%s", out)
	}
	if got, err := os.ReadFile(conf); err != nil || !bytes.Equal(got, edited) {
		t.Errorf("%s after the upgrade: %v, want the local edit kept:\n%s", conf, err, got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "root-token")); err != nil {
		t.Errorf("the upgrade took the data: %v", err)
	}
	checkOwner(t, dataDir, fs.ModeDir|0o700, uid, gid)
	if pids := running(t, "/usr/bin/certvaultd"); len(pids) > 0 {
		t.Errorf("certvaultd runs after the upgrade (pids %v), but it was stopped before", pids)
	}

	// remove keeps the data, the conffile and the user.
	dpkg(t, "--remove", "certvault-agent", "certvault")
	for _, p := range []string{"/usr/bin/certvaultd", "/usr/bin/certvault", "/usr/bin/certvault-agent", serverUnit, agentUnit} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after dpkg --remove", p)
		}
	}
	for _, p := range []string{"/etc/certvault/certvaultd.yaml", filepath.Join(dataDir, "raft"), filepath.Join(dataDir, "seal.key"), filepath.Join(agentState, "identity.json")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("dpkg --remove took %s: %v", p, err)
		}
	}
	if _, err := user.Lookup("certvault"); err != nil {
		t.Errorf("dpkg --remove took the user certvault: %v", err)
	}

	// purge says what it deletes, then deletes the data and the user.
	out = dpkg(t, "--purge", "certvault-agent", "certvault")
	for _, want := range []string{"purge: deleting /var/lib/certvault ", "purge: deleting the system user certvault", "purge: deleting /var/lib/certvault-agent", "purge: keeping /etc/certvault/agent.yaml"} {
		if !strings.Contains(out, want) {
			t.Errorf("dpkg --purge did not say %q:\n%s", want, out)
		}
	}
	for _, pkg := range []string{"certvault", "certvault-agent"} {
		if st := dpkgStatus(t, pkg); st != "" {
			t.Errorf("after purge %s has status %q", pkg, st)
		}
	}
	if _, err := user.Lookup("certvault"); err == nil {
		t.Error("the user certvault is still there after purge")
	}
	if _, err := user.LookupGroup("certvault"); err == nil {
		t.Error("the group certvault is still there after purge")
	}
	for _, p := range []string{dataDir, agentState, "/etc/certvault/certvaultd.yaml"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after purge", p)
		}
	}
	// Left: only the agent configuration the test wrote (purge keeps
	// what is not the package's, and said so).
	left, err := os.ReadDir(etcDir)
	if err != nil || len(left) != 1 || left[0].Name() != "agent.yaml" {
		t.Errorf("%s after purge holds %v (%v), want only agent.yaml, which the test wrote", etcDir, left, err)
	}
	t.Logf("TestInstall took %v", time.Since(began).Round(time.Second))
}

// buildPackages runs make package into a new directory and returns the
// packages in the order of debpkg.Packages.
func buildPackages(t *testing.T, root string) []string {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", root, "package", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	var out []string
	for _, p := range debpkg.Packages {
		m, err := filepath.Glob(filepath.Join(dist, p.Name+"_*_"+p.Arch+".deb"))
		if err != nil || len(m) != 1 {
			t.Fatalf("make package: %s %s: found %v (%v)", p.Name, p.Arch, m, err)
		}
		out = append(out, m[0])
	}
	return out
}

// lint runs lintian on the packages where it is installed and fails on
// any error tag.
func lint(t *testing.T, debs []string) {
	t.Helper()
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Log("lintian is not installed (make system-deps installs it): the packages are not linted")
		return
	}
	start := time.Now()
	out, err := exec.Command("lintian", append([]string{"--no-tag-display-limit"}, debs...)...).CombinedOutput()
	var errs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") {
			errs = append(errs, l)
		}
	}
	t.Logf("lintian (%v):\n%s", time.Since(start).Round(time.Second), out)
	if len(errs) > 0 {
		t.Errorf("lintian reports errors:\n%s", strings.Join(errs, "\n"))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Errorf("run lintian: %v", err)
	}
}

// dpkg runs dpkg with args and returns its output; it fails the test
// when dpkg fails.
func dpkg(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("dpkg %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// dpkgQuery returns field (a dpkg-query format) of pkg, "" when dpkg
// does not know the package.
func dpkgQuery(t *testing.T, format, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f", format, pkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "" // no such package
		}
		t.Fatalf("dpkg-query %s: %v", pkg, err)
	}
	return string(out)
}

// dpkgStatus returns pkg's abbreviated status ("ii", "rc", ...), or ""
// when it is not installed and has no files left.
func dpkgStatus(t *testing.T, pkg string) string {
	t.Helper()
	st := strings.TrimSpace(dpkgQuery(t, "${db:Status-Abbrev}", pkg))
	if st == "un" || st == "pn" {
		return ""
	}
	return st
}

// purgeAll purges both packages and removes what they or the test made,
// logging (and failing on) anything it could not undo.
func purgeAll(t *testing.T) {
	for _, pkg := range []string{"certvault-agent", "certvault"} {
		if dpkgStatus(t, pkg) == "" {
			continue
		}
		if out, err := exec.Command("dpkg", "--purge", pkg).CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge %s: %v\n%s", pkg, err, out)
		}
	}
	if _, err := user.Lookup("certvault"); err == nil {
		if out, err := exec.Command("userdel", "certvault").CombinedOutput(); err != nil {
			t.Errorf("cleanup: userdel certvault: %v\n%s", err, out)
		}
	}
	if _, err := user.LookupGroup("certvault"); err == nil {
		if out, err := exec.Command("groupdel", "certvault").CombinedOutput(); err != nil {
			t.Errorf("cleanup: groupdel certvault: %v\n%s", err, out)
		}
	}
	for _, p := range []string{etcDir, dataDir, agentState} {
		if err := os.RemoveAll(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// passwdShell returns name's login shell from getent passwd.
func passwdShell(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		t.Fatalf("getent passwd %s: %v", name, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	return f[len(f)-1]
}

// checkOwner checks path's type and mode, owner and group.
func checkOwner(t *testing.T, path string, mode fs.FileMode, uid, gid int) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode() != mode || int(sys.Uid) != uid || int(sys.Gid) != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", path, st.Mode(), sys.Uid, sys.Gid, mode, uid, gid)
	}
}

// checkStatic fails when the binary at path asks for a dynamic loader.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked, want static", path)
		}
	}
}

// checkDataOwned: everything certvaultd wrote in its data directory
// belongs to the service user, and nothing is writable by others (the
// directory itself is 0700).
func checkDataOwned(t *testing.T, uid int) {
	t.Helper()
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if owner := int(st.Sys().(*syscall.Stat_t).Uid); owner != uid {
			t.Errorf("%s belongs to uid %d, want certvault (%d)", path, owner, uid)
		}
		if st.Mode().Perm()&0o002 != 0 {
			t.Errorf("%s: mode %v, writable by others", path, st.Mode())
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", dataDir, err)
	}
}

// unitFile is a systemd unit's [Service] settings, each key's values in
// order.
type unitFile map[string][]string

// get returns key's last value.
func (u unitFile) get(key string) string {
	v := u[key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// readUnit reads the [Service] section of the unit file at path.
func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not KEY=VALUE: %q", path, line)
			}
			u[k] = append(u[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return u
}

// execStart returns the unit's ExecStart as argv, with $VARIABLES from
// its EnvironmentFile (none is written by the package: they expand to
// nothing, as systemd expands an unset variable).
func execStart(t *testing.T, u unitFile) []string {
	t.Helper()
	var argv []string
	for _, w := range strings.Fields(u.get("ExecStart")) {
		if strings.HasPrefix(w, "$") {
			for _, ef := range u["EnvironmentFile"] {
				if _, err := os.Stat(strings.TrimPrefix(ef, "-")); err == nil {
					t.Fatalf("%s exists: the test does not read environment files", ef)
				}
			}
			continue
		}
		argv = append(argv, w)
	}
	if len(argv) == 0 {
		t.Fatal("the unit has no ExecStart")
	}
	return argv
}

// checkHardening checks the packaged server unit's sandbox settings.
func checkHardening(t *testing.T) {
	t.Helper()
	u := readUnit(t, serverUnit)
	for key, want := range map[string]string{
		"User": "certvault", "Group": "certvault",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "AmbientCapabilities": "", "ReadWritePaths": dataDir,
		"ExecStart": "/usr/bin/certvaultd --config /etc/certvault/certvaultd.yaml $CERTVAULTD_ARGS",
	} {
		if got, ok := u[key]; !ok || u.get(key) != want {
			t.Errorf("%s: %s=%q (set %v), want %q", serverUnit, key, u.get(key), got != nil, want)
		}
	}
	if n, err := strconv.Atoi(u.get("LimitNOFILE")); err != nil || n < 10000+1024 {
		t.Errorf("%s: LimitNOFILE=%q, want room for 10,000 agents", serverUnit, u.get("LimitNOFILE"))
	}
	a := readUnit(t, agentUnit)
	if got := a.get("ExecStart"); got != "/usr/bin/certvault-agent run --config /etc/certvault/agent.yaml" {
		t.Errorf("%s: ExecStart=%q", agentUnit, got)
	}
}

// verifyUnits runs systemd-analyze verify on the installed units where
// systemd is installed.
func verifyUnits(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed (the systemd package brings it): the units are not verified")
		return
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", serverUnit, agentUnit).CombinedOutput()
	t.Logf("systemd-analyze verify:\n%s", out)
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "certvault") {
			t.Errorf("systemd-analyze verify about the units: %s", l)
		}
	}
}

// asUser makes cmd run as uid:gid, with the environment systemd gives a
// service of that user.
func asUser(cmd *exec.Cmd, uid, gid int) *exec.Cmd {
	home := "/root"
	if uid != 0 {
		home = dataDir
	}
	name := "root"
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "USER=" + name, "LOGNAME=" + name, "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return cmd
}

// service is a packaged program started as its unit would start it.
type service struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error
}

// startService runs argv as uid:gid in dir with the unit's UMask
// (0077), killing its process group when the test ends.
func startService(t *testing.T, name string, argv []string, uid, gid int, dir string) *service {
	t.Helper()
	s := &service{name: name, log: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = asUser(exec.Command("/bin/sh", append([]string{"-c", `umask 0077 && exec "$@"`, "sh"}, argv...)...), uid, gid)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if !s.exited() {
			if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %s: %v", name, err)
			}
			<-s.done
		}
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, tail(s.log.String(), 6000))
		}
	})
	return s
}

// exited reports whether the process has ended.
func (s *service) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, as systemctl stop does, and waits up to 30 s (the
// unit's TimeoutStopSec) for a clean exit.
func (s *service) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", s.name, err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("%s after SIGTERM: %v\n%s", s.name, s.err, tail(s.log.String(), 4000))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGTERM", s.name)
	}
}

// tail returns the end of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// running returns the processes whose program is exe.
func running(t *testing.T, exe string) []int {
	t.Helper()
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		if target, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && target == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}

// busy reports whether something listens on addr.
func busy(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// leafSerial returns the upper-case hex serial of the first certificate
// in fullchain after checking that key is its private key.
func leafSerial(fullchain, key string) (string, error) {
	pair, err := tls.LoadX509KeyPair(fullchain, key)
	if err != nil {
		return "", fmt.Errorf("load the installed pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "", fmt.Errorf("parse the leaf: %w", err)
	}
	return strings.ToUpper(leaf.SerialNumber.Text(16)), nil
}
