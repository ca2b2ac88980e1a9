package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testFiles are a binding's files for version, each naming the version
// on its first line.
func testFiles(version string) map[string][]byte {
	files := map[string][]byte{}
	for _, n := range []string{"cert.pem", "chain.pem", "key.pem"} {
		files[n] = fmt.Appendf(nil, "version %s\nfile %s\n%s", version, n, strings.Repeat("x", 512))
	}
	return files
}

// versionOf reads the version from a file's first line.
func versionOf(content []byte) string {
	line, _, _ := bytes.Cut(content, []byte("\n"))
	v, _ := strings.CutPrefix(string(line), "version ")
	return v
}

func testTarget(t *testing.T) Target {
	return Target{Dir: filepath.Join(t.TempDir(), "tls"), Name: "www", UID: -1, GID: -1, Mode: 0o640}
}

func mustInstall(t *testing.T, tg Target, version string, files map[string][]byte) Result {
	t.Helper()
	res, err := Install(tg, version, files)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// assertVisible checks that each of files is at Dir/<name> as the link to
// the current version's file, with content and mode.
func assertVisible(t *testing.T, tg Target, files map[string][]byte) {
	t.Helper()
	for n, want := range files {
		p := filepath.Join(tg.Dir, n)
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s is not a link: %v", n, err)
		}
		if target != ".certvault/"+tg.Name+"/current/"+n {
			t.Fatalf("%s -> %s", n, target)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s holds version %q, want %q", n, versionOf(got), versionOf(want))
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		wantMode := tg.Mode
		if wantMode == 0 {
			wantMode = 0o600
		}
		if fi.Mode() != wantMode {
			t.Fatalf("%s has mode %v, want %v", n, fi.Mode(), wantMode)
		}
	}
}

// must fails the test when a step of its setup failed.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
}

// mustStat is os.Stat that fails the test on an error.
func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	return fi
}

// mustRead is os.ReadFile that fails the test on an error.
func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return data
}

// mustCurrent is Current that fails the test on an error.
func mustCurrent(t *testing.T, tg Target) string {
	t.Helper()
	cur, err := Current(tg)
	if err != nil {
		t.Fatalf("current version of %s: %v", tg.Name, err)
	}
	return cur
}

// mustKept is Kept that fails the test on an error.
func mustKept(t *testing.T, tg Target) []string {
	t.Helper()
	kept, err := Kept(tg)
	if err != nil {
		t.Fatalf("kept versions of %s: %v", tg.Name, err)
	}
	return kept
}

// mustDrift is Drift that fails the test on an error.
func mustDrift(t *testing.T, tg Target, files map[string][]byte) []string {
	t.Helper()
	d, err := Drift(tg, files)
	if err != nil {
		t.Fatalf("drift of %s: %v", tg.Name, err)
	}
	return d
}

func stateDirOf(tg Target) string { return filepath.Join(tg.Dir, ".certvault", tg.Name) }

// versionDirs lists the version directories on disk.
func versionDirs(t *testing.T, tg Target) []string {
	t.Helper()
	entries, err := os.ReadDir(stateDirOf(tg))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func TestInstall(t *testing.T) {
	tg := testTarget(t)
	files := testFiles("v1")
	res := mustInstall(t, tg, "v1", files)
	if !res.Changed || res.Previous != "" || res.Current != "v1" || res.Swap <= 0 {
		t.Fatalf("result %+v", res)
	}
	assertVisible(t, tg, files)
	vdir := filepath.Join(stateDirOf(tg), "v1")
	fi, err := os.Stat(vdir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Fatalf("version directory mode %v, want 0750", fi.Mode().Perm())
	}
	if uid, _ := owner(t, filepath.Join(tg.Dir, "key.pem")); uid != os.Geteuid() {
		t.Fatalf("key.pem owned by %d, want %d", uid, os.Geteuid())
	}
	if cur, err := Current(tg); err != nil || cur != "v1" {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	data, err := os.ReadFile(filepath.Join(stateDirOf(tg), "versions"))
	if err != nil || string(data) != "v1\n" {
		t.Fatalf("versions file %q, %v", data, err)
	}

	res = mustInstall(t, tg, "v2", testFiles("v2"))
	if !res.Changed || res.Previous != "v1" || res.Current != "v2" {
		t.Fatalf("result %+v", res)
	}
	assertVisible(t, tg, testFiles("v2"))

	if os.Geteuid() == 0 {
		tg := testTarget(t)
		tg.UID, tg.GID, tg.Mode = 65534, 65534, 0o440
		mustInstall(t, tg, "n1", testFiles("n1"))
		assertVisible(t, tg, testFiles("n1"))
		for _, p := range []string{filepath.Join(tg.Dir, "key.pem"), filepath.Join(stateDirOf(tg), "n1")} {
			if uid, gid := owner(t, p); uid != 65534 || gid != 65534 {
				t.Fatalf("%s owned by %d:%d, want 65534:65534", p, uid, gid)
			}
		}
		if fi := mustStat(t, filepath.Join(stateDirOf(tg), "n1")); fi.Mode().Perm() != 0o550 {
			t.Fatalf("version directory mode %v, want 0550", fi.Mode().Perm())
		}
		// An owner change alone makes a new version directory.
		tg.UID, tg.GID = 65533, 65533
		if res := mustInstall(t, tg, "n1", testFiles("n1")); !res.Changed || res.Current != "n1.1" {
			t.Fatalf("owner change: %+v", res)
		}
		if uid, _ := owner(t, filepath.Join(tg.Dir, "cert.pem")); uid != 65533 {
			t.Fatalf("cert.pem owned by %d after owner change", uid)
		}
		// Version directories that the process could not write are still
		// pruned.
		for _, v := range []string{"n2", "n3", "n4"} {
			mustInstall(t, tg, v, testFiles(v))
		}
		if dirs := versionDirs(t, tg); !slices.Equal(dirs, []string{"n2", "n3", "n4"}) {
			t.Fatalf("version directories %v", dirs)
		}
	}
}

func TestInstallUnchanged(t *testing.T) {
	tg := testTarget(t)
	mustInstall(t, tg, "v1", testFiles("v1"))
	keyPath := filepath.Join(stateDirOf(tg), "v1", "key.pem")
	before, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	versionsBefore := mustStat(t, filepath.Join(stateDirOf(tg), "versions"))
	time.Sleep(20 * time.Millisecond)
	// Same content, even under another vault version: nothing is written.
	for _, v := range []string{"v1", "v1-again"} {
		res := mustInstall(t, tg, v, testFiles("v1"))
		if res.Changed || res.Current != "v1" || res.Previous != "v1" {
			t.Fatalf("install %s again: %+v", v, res)
		}
	}
	after := mustStat(t, keyPath)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("key.pem was rewritten")
	}
	if versionsAfter := mustStat(t, filepath.Join(stateDirOf(tg), "versions")); !versionsAfter.ModTime().Equal(versionsBefore.ModTime()) {
		t.Fatal("versions was rewritten")
	}
	if dirs := versionDirs(t, tg); !slices.Equal(dirs, []string{"v1"}) {
		t.Fatalf("version directories %v", dirs)
	}

	// A mode change alone is a change.
	tg.Mode = 0o600
	if res := mustInstall(t, tg, "v1", testFiles("v1")); !res.Changed || res.Current != "v1.1" {
		t.Fatalf("mode change: %+v", res)
	}
	assertVisible(t, tg, testFiles("v1"))
}

func TestInstallSameVersionOtherContent(t *testing.T) {
	tg := testTarget(t)
	mustInstall(t, tg, "v1", testFiles("v1"))
	mustInstall(t, tg, "v2", testFiles("v2"))
	res := mustInstall(t, tg, "v1", testFiles("v1-other"))
	if res.Current != "v1.1" {
		t.Fatalf("current %q, want v1.1", res.Current)
	}
	assertVisible(t, tg, testFiles("v1-other"))
	// Installing v1's first content again reuses its kept directory.
	res = mustInstall(t, tg, "v1", testFiles("v1"))
	if res.Current != "v1" || !res.Changed {
		t.Fatalf("reinstall of kept content: %+v", res)
	}
	kept := mustKept(t, tg)
	if !slices.Equal(kept, []string{"v1", "v1.1", "v2"}) {
		t.Fatalf("kept %v", kept)
	}
	data := mustRead(t, filepath.Join(stateDirOf(tg), "versions"))
	if string(data) != "v1\nv1.1 v1\nv2\n" {
		t.Fatalf("versions file %q", data)
	}
}

func TestInstallKeepsThree(t *testing.T) {
	tg := testTarget(t)
	for i := 1; i <= 5; i++ {
		v := fmt.Sprintf("v%d", i)
		mustInstall(t, tg, v, testFiles(v))
	}
	kept, err := Kept(tg)
	if err != nil || !slices.Equal(kept, []string{"v5", "v4", "v3"}) {
		t.Fatalf("kept %v, %v", kept, err)
	}
	if dirs := versionDirs(t, tg); !slices.Equal(dirs, []string{"v3", "v4", "v5"}) {
		t.Fatalf("version directories %v", dirs)
	}
	assertVisible(t, tg, testFiles("v5"))
}

func TestSwitch(t *testing.T) {
	tg := testTarget(t)
	for _, v := range []string{"v1", "v2", "v3"} {
		mustInstall(t, tg, v, testFiles(v))
	}
	if err := Switch(tg, "v2"); err != nil {
		t.Fatal(err)
	}
	assertVisible(t, tg, testFiles("v2"))
	if cur := mustCurrent(t, tg); cur != "v2" {
		t.Fatalf("current %q", cur)
	}
	if kept := mustKept(t, tg); !slices.Equal(kept, []string{"v2", "v3", "v1"}) {
		t.Fatalf("kept %v", kept)
	}
	if err := Switch(tg, "v3"); err != nil {
		t.Fatal(err)
	}
	assertVisible(t, tg, testFiles("v3"))
	// A new install drops the oldest by switch order: v1.
	mustInstall(t, tg, "v4", testFiles("v4"))
	if kept := mustKept(t, tg); !slices.Equal(kept, []string{"v4", "v3", "v2"}) {
		t.Fatalf("kept %v", kept)
	}
	for _, v := range []string{"v1", "nope", "../v2", ".tmp-x", ""} {
		if err := Switch(tg, v); err == nil {
			t.Fatalf("switch to %q worked", v)
		}
	}
	assertVisible(t, tg, testFiles("v4"))
}

func TestSwitchFixesLinkSet(t *testing.T) {
	tg := testTarget(t)
	withPFX := testFiles("v1")
	withPFX["cert.pfx"] = []byte("version v1\npfx\n")
	mustInstall(t, tg, "v1", withPFX)
	assertVisible(t, tg, withPFX)
	// v2 has no pfx: the binding's pfx link goes.
	mustInstall(t, tg, "v2", testFiles("v2"))
	if _, err := os.Lstat(filepath.Join(tg.Dir, "cert.pfx")); !os.IsNotExist(err) {
		t.Fatalf("stale cert.pfx link: %v", err)
	}
	// Back to v1: it comes back.
	if err := Switch(tg, "v1"); err != nil {
		t.Fatal(err)
	}
	assertVisible(t, tg, withPFX)
}

func TestInstallReplacesFilesNotDirectories(t *testing.T) {
	tg := testTarget(t)
	if err := os.MkdirAll(tg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An old regular file and a link elsewhere are replaced; the link's
	// target is left alone; other files of Dir too.
	must(t, os.WriteFile(filepath.Join(tg.Dir, "cert.pem"), []byte("old"), 0o644))
	outside := filepath.Join(t.TempDir(), "outside")
	must(t, os.WriteFile(outside, []byte("outside"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(tg.Dir, "key.pem")))
	must(t, os.WriteFile(filepath.Join(tg.Dir, "other.conf"), []byte("mine"), 0o644))
	mustInstall(t, tg, "v1", testFiles("v1"))
	assertVisible(t, tg, testFiles("v1"))
	if data := mustRead(t, outside); string(data) != "outside" {
		t.Fatal("the old link's target was written")
	}
	if data := mustRead(t, filepath.Join(tg.Dir, "other.conf")); string(data) != "mine" {
		t.Fatal("other.conf was touched")
	}

	tg2 := testTarget(t)
	must(t, os.MkdirAll(filepath.Join(tg2.Dir, "key.pem"), 0o755))
	if _, err := Install(tg2, "v1", testFiles("v1")); err == nil || !strings.Contains(err.Error(), "refuse to replace directory") {
		t.Fatalf("err = %v", err)
	}
	if cur := mustCurrent(t, tg2); cur != "" {
		t.Fatalf("current %q after a refused install", cur)
	}
}

func TestTwoBindingsShareDir(t *testing.T) {
	www := testTarget(t)
	api := www
	api.Name = "api"
	mustInstall(t, www, "v1", map[string][]byte{"www.pem": []byte("version w1\n")})
	mustInstall(t, api, "v1", map[string][]byte{"api.pem": []byte("version a1\n")})
	mustInstall(t, www, "v2", map[string][]byte{"www.pem": []byte("version w2\n")})
	assertVisible(t, www, map[string][]byte{"www.pem": []byte("version w2\n")})
	assertVisible(t, api, map[string][]byte{"api.pem": []byte("version a1\n")})
}

func TestInstallRejectsNames(t *testing.T) {
	tg := testTarget(t)
	for _, v := range []string{"", ".hidden", "../x", "a/b", strings.Repeat("a", 128), "a b", "é"} {
		if _, err := Install(tg, v, testFiles("x")); err == nil {
			t.Fatalf("version %q installed", v)
		}
	}
	for _, n := range []string{"../x.pem", "a/b.pem", ".certvault", ""} {
		if _, err := Install(tg, "v1", map[string][]byte{n: []byte("x")}); err == nil {
			t.Fatalf("file %q installed", n)
		}
	}
	bad := tg
	bad.Name = "../www"
	if _, err := Install(bad, "v1", testFiles("v1")); err == nil {
		t.Fatal("binding ../www installed")
	}
	if _, err := Install(tg, "v1", nil); err == nil {
		t.Fatal("no files installed")
	}
	// Valid versions that collide with the state's own names.
	for _, v := range []string{"current", "versions"} {
		res := mustInstall(t, tg, v, testFiles(v))
		if res.Current != v+".1" {
			t.Fatalf("version %s went to %q", v, res.Current)
		}
		assertVisible(t, tg, testFiles(v))
	}
}

func TestReadOnlyOnMissingBinding(t *testing.T) {
	tg := testTarget(t)
	if cur, err := Current(tg); cur != "" || err != nil {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	if kept, err := Kept(tg); kept != nil || err != nil {
		t.Fatalf("Kept = %v, %v", kept, err)
	}
	if d, err := Drift(tg, testFiles("v1")); err != nil || len(d) != 3 {
		t.Fatalf("Drift = %v, %v", d, err)
	}
	if err := Switch(tg, "v1"); err == nil {
		t.Fatal("switch on a missing binding worked")
	}
	if err := Repair(tg, testFiles("v1")); err == nil {
		t.Fatal("repair on a missing binding worked")
	}
}

func TestDriftAndRepair(t *testing.T) {
	tg := testTarget(t)
	files := testFiles("v1")
	mustInstall(t, tg, "v1", files)
	mustInstall(t, tg, "v2", testFiles("v2"))
	mustInstall(t, tg, "v1", files) // current is v1, v2 before it
	if d, err := Drift(tg, files); err != nil || len(d) != 0 {
		t.Fatalf("drift after install: %v, %v", d, err)
	}

	// Links only: a deleted link and a link replaced by a file.
	must(t, os.Remove(filepath.Join(tg.Dir, "cert.pem")))
	must(t, os.Remove(filepath.Join(tg.Dir, "key.pem")))
	must(t, os.WriteFile(filepath.Join(tg.Dir, "key.pem"), files["key.pem"], 0o640))
	if d := mustDrift(t, tg, files); !slices.Equal(d, []string{"cert.pem", "key.pem"}) {
		t.Fatalf("drift %v", d)
	}
	if err := Repair(tg, files); err != nil {
		t.Fatal(err)
	}
	if d := mustDrift(t, tg, files); len(d) != 0 {
		t.Fatalf("drift after repair: %v", d)
	}
	if cur := mustCurrent(t, tg); cur != "v1" {
		t.Fatalf("a link repair moved current to %q", cur)
	}
	assertVisible(t, tg, files)

	// The version's files: one chmod'ed, one edited, one deleted.
	vdir := filepath.Join(stateDirOf(tg), "v1")
	for _, damage := range []struct {
		name string
		do   func(p string) error
	}{
		{"chain.pem", func(p string) error { return os.Chmod(p, 0o644) }},
		{"cert.pem", func(p string) error { return os.WriteFile(p, []byte("version evil\n"), 0o640) }},
		{"key.pem", os.Remove},
	} {
		if err := damage.do(filepath.Join(vdir, damage.name)); err != nil {
			t.Fatal(err)
		}
	}
	// And a link pointing somewhere else.
	must(t, os.Remove(filepath.Join(tg.Dir, "cert.pem")))
	must(t, os.Symlink(".certvault/www/v2/cert.pem", filepath.Join(tg.Dir, "cert.pem")))
	if d := mustDrift(t, tg, files); !slices.Equal(d, []string{"cert.pem", "chain.pem", "key.pem"}) {
		t.Fatalf("drift %v", d)
	}
	if err := Repair(tg, files); err != nil {
		t.Fatal(err)
	}
	if d := mustDrift(t, tg, files); len(d) != 0 {
		t.Fatalf("drift after repair: %v", d)
	}
	assertVisible(t, tg, files)
	if cur := mustCurrent(t, tg); cur != "v1.1" {
		t.Fatalf("current %q, want v1.1", cur)
	}
	// The damaged directory is no longer kept, nor on disk.
	if kept := mustKept(t, tg); !slices.Equal(kept, []string{"v1.1", "v2"}) {
		t.Fatalf("kept %v", kept)
	}
	if dirs := versionDirs(t, tg); !slices.Equal(dirs, []string{"v1.1", "v2"}) {
		t.Fatalf("version directories %v", dirs)
	}
	// A second damage repairs under the vault's version, not v1.1.1: the
	// name v1 is free again.
	must(t, os.Chmod(filepath.Join(stateDirOf(tg), "v1.1"), 0o700))
	if d := mustDrift(t, tg, files); len(d) != 3 {
		t.Fatalf("drift after chmod of the version directory: %v", d)
	}
	if err := Repair(tg, files); err != nil {
		t.Fatal(err)
	}
	if cur := mustCurrent(t, tg); cur != "v1" {
		t.Fatalf("current %q, want v1", cur)
	}
	if err := Repair(tg, files); err != nil {
		t.Fatal(err)
	}
	if cur := mustCurrent(t, tg); cur != "v1" {
		t.Fatalf("repair without drift moved current to %q", cur)
	}
}

func TestInstallCleansLeftovers(t *testing.T) {
	tg := testTarget(t)
	mustInstall(t, tg, "v1", testFiles("v1"))
	st := stateDirOf(tg)
	must(t, os.MkdirAll(filepath.Join(st, ".tmp-dir-dead", "x"), 0o700))
	must(t, os.Chmod(filepath.Join(st, ".tmp-dir-dead"), 0o500))
	must(t, os.Symlink("v1", filepath.Join(st, ".tmp-link-dead")))
	must(t, os.Symlink(".certvault/www/current/cert.pem", filepath.Join(tg.Dir, ".tmp-www~dead")))
	must(t, os.Symlink("x", filepath.Join(tg.Dir, ".tmp-other~dead")))
	// A version renamed into place but never switched to.
	must(t, os.MkdirAll(filepath.Join(st, "v9"), 0o750))
	mustInstall(t, tg, "v2", testFiles("v2"))
	for _, p := range []string{
		filepath.Join(st, ".tmp-dir-dead"), filepath.Join(st, ".tmp-link-dead"),
		filepath.Join(tg.Dir, ".tmp-www~dead"), filepath.Join(st, "v9"),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s is still there: %v", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(tg.Dir, ".tmp-other~dead")); err != nil {
		t.Fatal("another binding's temporary link was removed")
	}
}

// TestConsistentReader reads cert and key during 50 installs. A reader
// that resolves the current link once and opens both files in that
// directory never sees two versions. One that opens Dir/cert.pem and then
// Dir/key.pem can, which the test only counts.
func TestConsistentReader(t *testing.T) {
	tg := testTarget(t)
	mustInstall(t, tg, "v0", testFiles("v0"))
	var (
		stop                 atomic.Bool
		reads, mixed, naive  atomic.Int64
		straddles, vanishing atomic.Int64
		wg                   sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			target, err := os.Readlink(filepath.Join(stateDirOf(tg), "current"))
			if err != nil {
				t.Error(err)
				return
			}
			dir, err := os.OpenRoot(filepath.Join(stateDirOf(tg), target))
			if err != nil {
				vanishing.Add(1) // pruned since: start again
				continue
			}
			cert, err1 := dir.ReadFile("cert.pem")
			key, err2 := dir.ReadFile("key.pem")
			dir.Close()
			if err1 != nil || err2 != nil {
				vanishing.Add(1)
				continue
			}
			reads.Add(1)
			if versionOf(cert) != versionOf(key) || versionOf(cert) != target {
				mixed.Add(1)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			cert, err1 := os.ReadFile(filepath.Join(tg.Dir, "cert.pem"))
			key, err2 := os.ReadFile(filepath.Join(tg.Dir, "key.pem"))
			if err1 != nil || err2 != nil {
				t.Errorf("read through the links: %v, %v", err1, err2)
				return
			}
			naive.Add(1)
			if versionOf(cert) != versionOf(key) {
				straddles.Add(1)
			}
		}
	}()
	for i := 1; i <= 50; i++ {
		v := fmt.Sprintf("v%d", i)
		if _, err := Install(tg, v, testFiles(v)); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if mixed.Load() != 0 {
		t.Fatalf("%d of %d reads through the resolved directory mixed versions", mixed.Load(), reads.Load())
	}
	if reads.Load() == 0 {
		t.Fatal("no consistent read")
	}
	t.Logf("resolved reads %d (restarted %d); reads through the links %d, of which %d straddled a switch",
		reads.Load(), vanishing.Load(), naive.Load(), straddles.Load())
}
