// Package debpkg builds certvault's Debian packages with nFPM (as a
// library): certvault (certvaultd with PKCS#11, the certvault CLI, the
// server's unit, sysusers and tmpfiles snippets, the default configuration
// as a conffile, docs) and certvault-agent (the static agent, its unit and
// tmpfiles snippet), from binaries built beforehand (make package).
//
// Packages are reproducible: every file's mode, owner and time are set
// here (never taken from the checkout), entries are sorted, the changelog
// is written from the version and time alone, and compressed without a
// time stamp. The same binaries, tree and time give the same bytes.
//
// It builds no binary and installs nothing; scripts/package is its command
// and the install test (test, tag install) checks what it makes on a
// real dpkg.
package debpkg

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Errors of Build.
var (
	// ErrVersion is returned for a version Debian does not accept.
	ErrVersion = errors.New("debpkg: not a Debian version")
	// ErrMissing is returned when an input file (a binary, a unit, a
	// script) is not there.
	ErrMissing = errors.New("debpkg: input missing")
)

// Maintainer is the Maintainer field of every package.
const Maintainer = "certvault maintainers <certvault@example.com>"

// homepage is the Homepage field of every package.
const homepage = "https://github.com/certvault/certvault"

// Build says what to package. Every field is required.
type Build struct {
	// Version is the Debian version, e.g. from DebVersion.
	Version string
	// Commit is the commit the binaries were built from, for the
	// changelog.
	Commit string
	// Time is every file's modification time and the changelog's date
	// (SOURCE_DATE_EPOCH or the commit's time).
	Time time.Time
	// Root is the repository: packaging/, systemd/ and docs/ are read
	// from it.
	Root string
	// Bin is the directory with one folder per Debian architecture
	// (amd64, arm64) holding the binaries built for it: certvaultd and
	// certvault for amd64, certvault-agent for each.
	Bin string
	// Out is the directory the .deb files are written to.
	Out string
}

// Package is one package to build.
type Package struct {
	// Name is the package's name; Arch its Debian architecture.
	Name, Arch string
}

// Packages are the packages Build makes, in order.
var Packages = []Package{
	{"certvault", "amd64"},
	{"certvault-agent", "amd64"},
	{"certvault-agent", "arm64"},
}

// FileName is the .deb file name of p at version.
func FileName(p Package, version string) string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, version, p.Arch)
}

// debVersionRE is what Debian accepts as a native package's version.
var debVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// describeRE matches git describe output of a tag vX.Y.Z[-N-gHASH][-dirty].
var describeRE = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)

// hashRE matches git describe --always output without a tag.
var hashRE = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)

// DebVersion turns git describe output (--always --dirty) into a Debian
// version that sorts by release, then by commit time: v1.2.3 → 1.2.3,
// v1.2.3-4-gabc → 1.2.3+git4.abc, and a commit without a tag →
// 0~gitYYYYMMDDHHMMSS.abc; a dirty tree adds ".dirty".
func DebVersion(describe string, commit time.Time) (string, error) {
	var v string
	if m := describeRE.FindStringSubmatch(describe); m != nil && !hashRE.MatchString(describe) {
		v = m[1]
		if m[2] != "" {
			v += "+git" + m[2] + "." + m[3]
		}
		if m[4] != "" {
			v += ".dirty"
		}
	} else if m := hashRE.FindStringSubmatch(describe); m != nil {
		v = "0~git" + commit.UTC().Format("20060102150405") + "." + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
	} else {
		return "", fmt.Errorf("%w: git describe gave %q", ErrVersion, describe)
	}
	if !debVersionRE.MatchString(v) {
		return "", fmt.Errorf("%w: %q (from %q)", ErrVersion, v, describe)
	}
	return v, nil
}

// Write builds every package of Packages into b.Out and returns their
// paths.
func (b Build) Write() ([]string, error) {
	if !debVersionRE.MatchString(b.Version) {
		return nil, fmt.Errorf("%w: %q", ErrVersion, b.Version)
	}
	tmp, err := os.MkdirTemp("", "debpkg-")
	if err != nil {
		return nil, fmt.Errorf("make a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(b.Out, 0o755); err != nil {
		return nil, fmt.Errorf("make the output directory: %w", err)
	}
	var out []string
	for _, p := range Packages {
		info, err := b.info(p, tmp)
		if err != nil {
			return nil, fmt.Errorf("package %s %s: %w", p.Name, p.Arch, err)
		}
		path := filepath.Join(b.Out, FileName(p, b.Version))
		if err := writeDeb(info, path); err != nil {
			return nil, fmt.Errorf("package %s %s: %w", p.Name, p.Arch, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// writeDeb writes the package info describes to path, through a
// temporary file renamed into place.
func writeDeb(info *nfpm.Info, path string) error {
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	sort.Sort(info.Contents)
	f, err := os.CreateTemp(filepath.Dir(path), ".deb-*")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer os.Remove(f.Name())
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return fmt.Errorf("write deb: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("chmod: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// file is one file of a package: from src (relative to the repository,
// or absolute) to dst, with its mode and nFPM type ("" for a plain file).
type file struct {
	src, dst string
	mode     os.FileMode
	typ      string
}

// info describes package p; tmp holds the files Build writes itself.
func (b Build) info(p Package, tmp string) (*nfpm.Info, error) {
	bin := filepath.Join(b.Bin, p.Arch)
	doc := "/usr/share/doc/" + p.Name
	changelog, err := b.changelog(p, tmp)
	if err != nil {
		return nil, err
	}
	common := []file{
		{"packaging/copyright", doc + "/copyright", 0o644, ""},
		{changelog, doc + "/changelog.gz", 0o644, ""},
	}
	info := &nfpm.Info{
		Name:          p.Name,
		Arch:          p.Arch,
		Platform:      "linux",
		Version:       b.Version,
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    Maintainer,
		Homepage:      homepage,
		License:       "see /usr/share/doc/" + p.Name + "/copyright",
		MTime:         b.Time.UTC(),
	}
	var list []file
	switch p.Name {
	case "certvault":
		info.Description = "certificate vault for fleets of machines (server and CLI)\n" +
			"certvaultd is one node of a small Raft cluster that holds private keys,\n" +
			"enrolls certificates from CAs (its own, ACME, offline), renews them and\n" +
			"keeps an audit trail; its data plane speaks the Azure Key Vault REST\n" +
			"dialect. Keys can live in an HSM over PKCS#11. This package holds\n" +
			"certvaultd, the certvault CLI, a hardened systemd unit (not enabled)\n" +
			"and the configuration file /etc/certvault/certvaultd.yaml."
		libc, err := libcDepends(filepath.Join(bin, "certvaultd"))
		if err != nil {
			return nil, err
		}
		info.Depends = []string{libc}
		info.Suggests = []string{"softhsm2"}
		list = []file{
			{filepath.Join(bin, "certvaultd"), "/usr/bin/certvaultd", 0o755, ""},
			{filepath.Join(bin, "certvault"), "/usr/bin/certvault", 0o755, ""},
			{"systemd/certvaultd.service", "/lib/systemd/system/certvaultd.service", 0o644, ""},
			{"systemd/certvault.sysusers", "/usr/lib/sysusers.d/certvault.conf", 0o644, ""},
			{"systemd/certvault.tmpfiles", "/usr/lib/tmpfiles.d/certvault.conf", 0o644, ""},
			{"packaging/certvaultd.yaml", "/etc/certvault/certvaultd.yaml", 0o644, files.TypeConfigNoReplace},
			{"README.md", doc + "/README.md", 0o644, ""},
			{"docs/install.md", doc + "/install.md", 0o644, ""},
			{"docs/operations.md", doc + "/operations.md", 0o644, ""},
			{"docs/hsm.md", doc + "/hsm.md", 0o644, ""},
			{"docs/cli.md", doc + "/cli.md", 0o644, ""},
		}
	case "certvault-agent":
		info.Description = "certvault agent: installs certificates from a certvault vault\n" +
			"certvault-agent runs on each VM that needs certificates or secrets from a\n" +
			"certvault vault. It joins once with a join token, installs each new\n" +
			"version atomically, reloads the service that uses it, checks that the\n" +
			"service took it and rolls back when it did not. This package holds the\n" +
			"static agent and its systemd unit (not enabled; it runs once\n" +
			"/etc/certvault/agent.yaml exists)."
		list = []file{
			{filepath.Join(bin, "certvault-agent"), "/usr/bin/certvault-agent", 0o755, ""},
			{"systemd/certvault-agent.service", "/lib/systemd/system/certvault-agent.service", 0o644, ""},
			{"systemd/certvault-agent.tmpfiles", "/usr/lib/tmpfiles.d/certvault-agent.conf", 0o644, ""},
			{"docs/agent.md", doc + "/agent.md", 0o644, ""},
			{"docs/install.md", doc + "/install.md", 0o644, ""},
			{"packaging/agent.yaml", doc + "/examples/agent.yaml", 0o644, ""},
			{"packaging/lintian/certvault-agent", "/usr/share/lintian/overrides/certvault-agent", 0o644, ""},
		}
	default:
		return nil, fmt.Errorf("%w: no package %q", ErrMissing, p.Name)
	}
	scripts := filepath.Join(b.Root, "packaging", "scripts", p.Name)
	info.Scripts = nfpm.Scripts{
		PostInstall: scripts + ".postinst",
		PreRemove:   scripts + ".prerm",
		PostRemove:  scripts + ".postrm",
	}
	for _, s := range []string{info.Scripts.PostInstall, info.Scripts.PreRemove, info.Scripts.PostRemove} {
		if _, err := os.Stat(s); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMissing, err)
		}
	}
	info.Contents = files.Contents{b.dir("/etc/certvault", 0o755)}
	for _, f := range append(list, common...) {
		src := f.src
		if !filepath.IsAbs(src) {
			src = filepath.Join(b.Root, src)
		}
		if st, err := os.Stat(src); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s for %s", ErrMissing, src, f.dst)
		}
		info.Contents = append(info.Contents, &files.Content{
			Source:      src,
			Destination: f.dst,
			Type:        f.typ,
			FileInfo:    &files.ContentFileInfo{Mode: f.mode, Owner: "root", Group: "root", MTime: b.Time.UTC()},
		})
	}
	return info, nil
}

// dir is a directory entry of a package.
func (b Build) dir(path string, mode os.FileMode) *files.Content {
	return &files.Content{
		Destination: path,
		Type:        files.TypeDir,
		FileInfo:    &files.ContentFileInfo{Mode: mode | os.ModeDir, Owner: "root", Group: "root", MTime: b.Time.UTC()},
	}
}

// changelog writes p's changelog.gz into tmp and returns its path: one
// entry for this version, dated b.Time, compressed without a name or a
// time stamp so that it is the same every time.
func (b Build) changelog(p Package, tmp string) (string, error) {
	text := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n",
		p.Name, b.Version, b.Commit, Maintainer, b.Time.UTC().Format(time.RFC1123Z))
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", fmt.Errorf("changelog: %w", err)
	}
	if _, err := zw.Write([]byte(text)); err != nil {
		return "", fmt.Errorf("changelog: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("changelog: %w", err)
	}
	path := filepath.Join(tmp, p.Name+"-"+p.Arch+".changelog.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("changelog: %w", err)
	}
	return path, nil
}

// glibcRE matches a glibc symbol version.
var glibcRE = regexp.MustCompile(`^GLIBC_([0-9]+)\.([0-9]+)$`)

// libcDepends returns the libc6 dependency of the ELF binary at path: at
// least the newest glibc symbol version it imports.
func libcDepends(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMissing, err)
	}
	defer f.Close()
	syms, err := f.ImportedSymbols()
	if err != nil {
		return "", fmt.Errorf("read the symbols of %s: %w", path, err)
	}
	major, minor := 0, 0
	for _, s := range syms {
		m := glibcRE.FindStringSubmatch(s.Version)
		if m == nil {
			continue
		}
		a, errA := strconv.Atoi(m[1])
		c, errC := strconv.Atoi(m[2])
		if errA != nil || errC != nil {
			continue // digits too long to be a glibc version
		}
		if a > major || a == major && c > minor {
			major, minor = a, c
		}
	}
	if major == 0 {
		return "", fmt.Errorf("%s imports no glibc symbol: not the cgo build of certvaultd", path)
	}
	return fmt.Sprintf("libc6 (>= %d.%d)", major, minor), nil
}
