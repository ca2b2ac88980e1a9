package debpkg

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBin writes a directory of stand-in binaries: copies of /bin/true,
// a glibc ELF like the cgo certvaultd, with file times of mtime.
func fakeBin(t *testing.T, mtime time.Time) string {
	t.Helper()
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("no /bin/true to stand in for the binaries: %v", err)
	}
	dir := t.TempDir()
	for _, p := range []string{"amd64/certvaultd", "amd64/certvault", "amd64/certvault-agent", "arm64/certvault-agent"} {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("make directory: %v", err)
		}
		if err := os.WriteFile(path, src, 0o700); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatalf("chtimes: %v", err)
		}
	}
	return dir
}

var buildTime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func testBuild(t *testing.T, binTime time.Time) Build {
	return Build{Version: "1.2.3+git4.abcdef", Commit: "abcdef0123", Time: buildTime, Root: filepath.Join("..", ".."), Bin: fakeBin(t, binTime), Out: t.TempDir()}
}

// TestReproducible: two builds from inputs that differ only in file
// times and directories give the same bytes.
func TestReproducible(t *testing.T) {
	a, err := testBuild(t, time.Now()).Write()
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	b, err := testBuild(t, time.Now().Add(-48*time.Hour)).Write()
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	if len(a) != len(Packages) || len(b) != len(Packages) {
		t.Fatalf("built %v and %v, want %d packages each", a, b, len(Packages))
	}
	for i := range a {
		if filepath.Base(a[i]) != FileName(Packages[i], "1.2.3+git4.abcdef") {
			t.Errorf("package %d is %s, want %s", i, filepath.Base(a[i]), FileName(Packages[i], "1.2.3+git4.abcdef"))
		}
		da, errA := os.ReadFile(a[i])
		db, errB := os.ReadFile(b[i])
		if errA != nil || errB != nil {
			t.Fatalf("read the packages: %v %v", errA, errB)
		}
		if !bytes.Equal(da, db) {
			t.Errorf("%s differs between two builds of the same input (%d and %d bytes)", filepath.Base(a[i]), len(da), len(db))
		}
	}
}

// dpkgDeb runs dpkg-deb with args and returns its output.
func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
	out, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestContents: what each package holds, with modes, owners and times
// set by the build; the control fields; the conffile.
func TestContents(t *testing.T) {
	paths, err := testBuild(t, time.Now()).Write()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	want := map[string][]string{
		"certvault_1.2.3+git4.abcdef_amd64.deb": {
			"-rwxr-xr-x root/root ./usr/bin/certvaultd",
			"-rwxr-xr-x root/root ./usr/bin/certvault",
			"-rw-r--r-- root/root ./lib/systemd/system/certvaultd.service",
			"-rw-r--r-- root/root ./usr/lib/sysusers.d/certvault.conf",
			"-rw-r--r-- root/root ./usr/lib/tmpfiles.d/certvault.conf",
			"-rw-r--r-- root/root ./etc/certvault/certvaultd.yaml",
			"drwxr-xr-x root/root ./etc/certvault/",
			"-rw-r--r-- root/root ./usr/share/doc/certvault/copyright",
			"-rw-r--r-- root/root ./usr/share/doc/certvault/changelog.gz",
			"-rw-r--r-- root/root ./usr/share/doc/certvault/install.md",
		},
		"certvault-agent_1.2.3+git4.abcdef_amd64.deb": {
			"-rwxr-xr-x root/root ./usr/bin/certvault-agent",
			"-rw-r--r-- root/root ./lib/systemd/system/certvault-agent.service",
			"-rw-r--r-- root/root ./usr/lib/tmpfiles.d/certvault-agent.conf",
			"-rw-r--r-- root/root ./usr/share/doc/certvault-agent/examples/agent.yaml",
			"-rw-r--r-- root/root ./usr/share/doc/certvault-agent/copyright",
		},
	}
	for _, p := range paths {
		name := filepath.Base(p)
		listing := dpkgDeb(t, "--contents", p)
		stamp := buildTime.Format("2006-01-02 15:04")
		for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
			if !strings.Contains(line, stamp) {
				t.Errorf("%s: %q is not dated %s", name, line, stamp)
			}
			if strings.Contains(line, "certvaultd") && strings.Contains(name, "agent") || strings.Contains(line, "/usr/bin/certvault ") && strings.Contains(name, "agent") {
				t.Errorf("%s holds a server file: %s", name, line)
			}
		}
		for _, w := range want[name] {
			fields := strings.Fields(w)
			found := false
			for _, line := range strings.Split(listing, "\n") {
				f := strings.Fields(line)
				if len(f) == 6 && f[0] == fields[0] && f[1] == fields[1] && f[5] == fields[2] {
					found = true
				}
			}
			if !found {
				t.Errorf("%s lacks %q; it holds:\n%s", name, w, listing)
			}
		}
	}
	server := paths[0]
	if got := dpkgDeb(t, "--field", server, "Depends"); !strings.HasPrefix(got, "libc6 (>= 2.") {
		t.Errorf("certvault Depends %q, want libc6 (>= 2.x)", got)
	}
	if got := dpkgDeb(t, "--field", server, "Suggests"); strings.TrimSpace(got) != "softhsm2" {
		t.Errorf("certvault Suggests %q, want softhsm2", got)
	}
	if got := dpkgDeb(t, "--field", paths[2], "Architecture"); strings.TrimSpace(got) != "arm64" {
		t.Errorf("%s Architecture %q, want arm64", paths[2], got)
	}
	if got := dpkgDeb(t, "--field", paths[1], "Depends"); strings.TrimSpace(got) != "" {
		t.Errorf("the static agent Depends on %q, want nothing", got)
	}
	ctrl := t.TempDir()
	dpkgDeb(t, "--control", server, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatalf("the server package has no conffiles: %v", err)
	}
	if strings.TrimSpace(string(conffiles)) != "/etc/certvault/certvaultd.yaml" {
		t.Errorf("conffiles %q, want /etc/certvault/certvaultd.yaml", conffiles)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		st, err := os.Stat(filepath.Join(ctrl, s))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("control %s: %v %v, want mode 0755", s, st, err)
		}
	}
}

func TestDebVersion(t *testing.T) {
	commit := time.Date(2025, 12, 6, 11, 46, 5, 0, time.UTC)
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-4-gabcdef0", "1.2.3+git4.abcdef0"},
		{"v1.2.3-4-gabcdef0-dirty", "1.2.3+git4.abcdef0.dirty"},
		{"v2.0.0rc1", "2.0.0rc1"},
		{"94b0662", "0~git20251206114605.94b0662"},
		{"abcdef1", "0~git20251206114605.abcdef1"},
		{"abcdef1-dirty", "0~git20251206114605.abcdef1.dirty"},
	} {
		got, err := DebVersion(tc.describe, commit)
		if err != nil || got != tc.want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", tc.describe, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "dev", "v1.2.3 x", "release-1"} {
		if got, err := DebVersion(bad, commit); !errors.Is(err, ErrVersion) {
			t.Errorf("DebVersion(%q) = %q, %v; want ErrVersion", bad, got, err)
		}
	}
}

// TestBinariesLinkNoPackaging: nFPM and its dependencies stay out of the
// three binaries.
func TestBinariesLinkNoPackaging(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/certvaultd", "./cmd/certvault", "./cmd/certvault-agent")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "goreleaser") || strings.HasSuffix(dep, "/debpkg") || strings.Contains(dep, "go-git") {
			t.Errorf("a binary imports %s", dep)
		}
	}
}
