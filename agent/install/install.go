package install

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// stateDir is the directory in Dir that holds every binding's state.
	stateDir = ".certvault"
	// currentLink names the link to the current version directory.
	currentLink = "current"
	// versionsFile lists the kept version directories, newest first.
	versionsFile = "versions"
	// tmpPrefix starts the name of everything written before it is
	// renamed into place; whatever carries it is a leftover once no
	// Install runs.
	tmpPrefix = ".tmp-"
	// keep is how many version directories are kept.
	keep = 3
	// defaultMode is the files' mode when Target.Mode is 0.
	defaultMode os.FileMode = 0o600
)

// nameRE is what a version or binding name may be made of.
var nameRE = regexp.MustCompile(`^[0-9A-Za-z._-]{1,127}$`)

// Target is where and how a binding's files are installed.
type Target struct {
	// Dir is where the user-visible files live, e.g. /etc/nginx/tls/www.
	// Install creates it (0755) when it is missing.
	Dir string
	// Name is the binding's name; its state lives in Dir/.certvault/<Name>/.
	Name string
	// UID and GID own the files and version directories; -1 leaves the
	// process's and is not compared by Install and Drift.
	UID, GID int
	// Mode is the permission bits of every file (0 means 0600); version
	// directories get the same bits plus x where r is set (0640 → 0750).
	Mode os.FileMode
}

// Result tells what Install did.
type Result struct {
	// Changed is true when the current version or a user-visible link
	// changed, so that readers should be told (a service reloaded).
	Changed bool
	// Previous and Current are the version directories current pointed
	// at before and after ("" for none).
	Previous, Current string
	// Swap is the time from the start of writing the version to the
	// switch of the current link.
	Swap time.Duration
}

// keptVersion is one line of the versions file.
type keptVersion struct {
	dir     string // the version directory's name
	version string // the vault's version it holds
}

// binding is a Target opened for work.
type binding struct {
	t       Target
	root    *os.Root // Dir
	state   *os.Root // Dir/.certvault/<Name>
	mode    os.FileMode
	dirMode os.FileMode
}

// errNoState means the binding has never been installed.
var errNoState = errors.New("no version is installed")

// locks serialises the writers of each binding in this process.
var locks sync.Map // string → *sync.Mutex

func lock(t Target) (unlock func()) {
	dir, err := filepath.Abs(t.Dir)
	if err != nil {
		dir = filepath.Clean(t.Dir)
	}
	m, _ := locks.LoadOrStore(dir+"\x00"+t.Name, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func checkName(what, s string) error {
	if !nameRE.MatchString(s) || strings.HasPrefix(s, ".") {
		return fmt.Errorf("%s %q: use 1 to 127 of 0-9 A-Z a-z . _ - and do not start with a dot", what, s)
	}
	return nil
}

// checkFileName accepts a plain base name that does not start with a dot.
func checkFileName(s string) error {
	if s == "" || len(s) > 255 || strings.HasPrefix(s, ".") || strings.ContainsAny(s, "/\\\x00") {
		return fmt.Errorf("file name %q: give a base name that does not start with a dot", s)
	}
	return nil
}

func checkTarget(t Target) error {
	if t.Dir == "" {
		return errors.New("the target has no directory")
	}
	if err := checkName("binding name", t.Name); err != nil {
		return err
	}
	if t.UID < -1 || t.GID < -1 {
		return fmt.Errorf("owner %d:%d: give ids or -1", t.UID, t.GID)
	}
	return nil
}

func checkFiles(files map[string][]byte) ([]string, error) {
	if len(files) == 0 {
		return nil, errors.New("no files are given")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		if err := checkFileName(n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// dirModeFor adds x where mode has r.
func dirModeFor(mode os.FileMode) os.FileMode {
	return mode | (mode&0o444)>>2
}

// rel is the binding's state directory relative to Dir.
func (t Target) rel() string { return stateDir + "/" + t.Name }

// linkTarget is what Dir/<file> points at.
func (t Target) linkTarget(file string) string { return t.rel() + "/" + currentLink + "/" + file }

// open opens the binding; with create it makes the directories that are
// missing, otherwise it returns errNoState for them.
func open(t Target, create bool) (*binding, error) {
	if err := checkTarget(t); err != nil {
		return nil, err
	}
	b := &binding{t: t, mode: t.Mode.Perm()}
	if b.mode == 0 {
		b.mode = defaultMode
	}
	b.dirMode = dirModeFor(b.mode)
	if create {
		if err := os.MkdirAll(t.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create target directory: %w", err)
		}
	}
	root, err := os.OpenRoot(t.Dir)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, errNoState
	}
	if err != nil {
		return nil, fmt.Errorf("open target directory: %w", err)
	}
	b.root = root
	for _, d := range []string{stateDir, t.rel()} {
		fi, err := root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := root.Mkdir(d, 0o755); err != nil {
				b.close()
				return nil, fmt.Errorf("create state directory: %w", err)
			}
			if err := root.Chmod(d, 0o755); err != nil {
				b.close()
				return nil, fmt.Errorf("create state directory: %w", err)
			}
			if err := syncDir(root, filepath.Dir(d)); err != nil {
				b.close()
				return nil, err
			}
		case errors.Is(err, fs.ErrNotExist):
			b.close()
			return nil, errNoState
		case err != nil:
			b.close()
			return nil, fmt.Errorf("open state directory: %w", err)
		case !fi.IsDir():
			b.close()
			return nil, fmt.Errorf("open state directory: %s in %s is not a directory", d, t.Dir)
		}
	}
	b.state, err = root.OpenRoot(t.rel())
	if err != nil {
		b.close()
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	return b, nil
}

func (b *binding) close() {
	if b.state != nil {
		b.state.Close()
	}
	if b.root != nil {
		b.root.Close()
	}
}

// Install makes files (base name → content) the binding's current
// version, named version by the vault.
//
// When the current version directory holds exactly these files with this
// content, owner and mode, nothing is written (Changed is false) except
// user-visible links that are missing or wrong. Otherwise the files are
// written into a new version directory (or an existing directory of the
// same version that holds exactly these files is reused), the current link is switched to it atomically, the
// user-visible links Dir/<file> are made (replacing a regular file or a
// wrong link atomically, never a directory; links of this binding to
// files no longer installed are removed), and version directories beyond
// the three newest are deleted. See the package documentation for the
// layout and what a crash leaves.
//
// On error, Result tells how far Install got: when Current differs from
// Previous, the switch happened.
func Install(t Target, version string, files map[string][]byte) (Result, error) {
	if err := checkName("version", version); err != nil {
		return Result{}, fmt.Errorf("install version: %w", err)
	}
	names, err := checkFiles(files)
	if err != nil {
		return Result{}, fmt.Errorf("install version %s: %w", version, err)
	}
	if err := checkTarget(t); err != nil {
		return Result{}, fmt.Errorf("install version %s: %w", version, err)
	}
	defer lock(t)()
	b, err := open(t, true)
	if err != nil {
		return Result{}, fmt.Errorf("install version %s: %w", version, err)
	}
	defer b.close()
	res, err := b.install(version, names, files, "")
	if err != nil {
		return res, fmt.Errorf("install version %s: %w", version, err)
	}
	return res, nil
}

// install does Install's work on an open binding. A replaced version
// directory is dropped from the kept ones (Repair's damaged directory).
func (b *binding) install(version string, names []string, files map[string][]byte, replaced string) (Result, error) {
	if err := b.checkUserPaths(names); err != nil {
		return Result{}, err
	}
	if err := b.cleanTemps(); err != nil {
		return Result{}, err
	}
	cur, err := b.current()
	if err != nil {
		return Result{}, err
	}
	res := Result{Previous: cur, Current: cur}
	if cur != "" {
		same, err := b.versionMatches(cur, files)
		if err != nil {
			return res, err
		}
		if same {
			// Nothing to write, unless a killed Install left the versions
			// file behind the switch or directories to delete.
			kept, err := b.kept(cur)
			if err == nil {
				err = b.writeKept(kept)
			}
			if err == nil {
				res.Changed, err = b.ensureLinks(names)
			}
			if err == nil {
				err = b.prune(kept)
			}
			return res, err
		}
	}
	kept, err := b.kept(cur)
	if err != nil {
		return res, err
	}
	dir, reuse, err := b.pickDir(version, files)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if !reuse {
		if err := b.writeVersion(dir, names, files); err != nil {
			return res, err
		}
	}
	if err := b.switchTo(dir); err != nil {
		return res, err
	}
	res.Swap = time.Since(start)
	res.Changed, res.Current = true, dir
	newKept := []keptVersion{{dir: dir, version: version}}
	for _, k := range kept {
		if k.dir != dir && k.dir != replaced {
			newKept = append(newKept, k)
		}
	}
	newKept = newKept[:min(len(newKept), keep)]
	if err := b.writeKept(newKept); err != nil {
		return res, err
	}
	if _, err := b.ensureLinks(names); err != nil {
		return res, err
	}
	return res, b.prune(newKept)
}

// Current returns the version directory the current link points at, ""
// when there is none.
func Current(t Target) (string, error) {
	b, err := open(t, false)
	if errors.Is(err, errNoState) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current version: %w", err)
	}
	defer b.close()
	cur, err := b.current()
	if err != nil {
		return "", fmt.Errorf("read current version: %w", err)
	}
	return cur, nil
}

// Kept lists the kept version directories, newest (by switch order)
// first; the current one is first.
func Kept(t Target) ([]string, error) {
	b, err := open(t, false)
	if errors.Is(err, errNoState) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list kept versions: %w", err)
	}
	defer b.close()
	cur, err := b.current()
	if err != nil {
		return nil, fmt.Errorf("list kept versions: %w", err)
	}
	kept, err := b.kept(cur)
	if err != nil {
		return nil, fmt.Errorf("list kept versions: %w", err)
	}
	dirs := make([]string, len(kept))
	for i, k := range kept {
		dirs[i] = k.dir
	}
	return dirs, nil
}

// Switch points the current link at a kept version directory (a
// rollback, or forward again), atomically, makes it the newest kept one
// and fixes the user-visible links for its files.
func Switch(t Target, version string) error {
	if err := checkName("version", version); err != nil {
		return fmt.Errorf("switch version: %w", err)
	}
	if err := checkTarget(t); err != nil {
		return fmt.Errorf("switch to version %s: %w", version, err)
	}
	defer lock(t)()
	b, err := open(t, false)
	if err != nil {
		return fmt.Errorf("switch to version %s: %w", version, err)
	}
	defer b.close()
	if err := b.switchKept(version); err != nil {
		return fmt.Errorf("switch to version %s: %w", version, err)
	}
	return nil
}

func (b *binding) switchKept(version string) error {
	if err := b.cleanTemps(); err != nil {
		return err
	}
	cur, err := b.current()
	if err != nil {
		return err
	}
	kept, err := b.kept(cur)
	if err != nil {
		return err
	}
	at := slices.IndexFunc(kept, func(k keptVersion) bool { return k.dir == version })
	if at < 0 {
		dirs := make([]string, len(kept))
		for i, k := range kept {
			dirs[i] = k.dir
		}
		return fmt.Errorf("it is not kept (kept: %s)", strings.Join(dirs, ", "))
	}
	names, err := b.versionFiles(version)
	if err != nil {
		return err
	}
	if err := b.checkUserPaths(names); err != nil {
		return err
	}
	if cur != version {
		if err := b.switchTo(version); err != nil {
			return err
		}
	}
	newKept := append([]keptVersion{kept[at]}, slices.Delete(slices.Clone(kept), at, at+1)...)
	if err := b.writeKept(newKept); err != nil {
		return err
	}
	_, err = b.ensureLinks(names)
	return err
}

// Drift compares what readers see at Dir/<file> with files, the content
// the current version should have. It returns, sorted, the base names
// that are missing, are not the link to the current version's file, or
// whose file in the current version directory differs in content, owner
// or mode (or all of them when the current link or the version
// directory's mode or owner is wrong). An empty result means no drift.
func Drift(t Target, files map[string][]byte) ([]string, error) {
	names, err := checkFiles(files)
	if err != nil {
		return nil, fmt.Errorf("check drift: %w", err)
	}
	b, err := open(t, false)
	if errors.Is(err, errNoState) {
		return names, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check drift: %w", err)
	}
	defer b.close()
	cur, err := b.current()
	if err != nil {
		return nil, fmt.Errorf("check drift: %w", err)
	}
	if cur == "" {
		return names, nil
	}
	ok, err := b.dirMatches(cur)
	if err != nil {
		return nil, fmt.Errorf("check drift: %w", err)
	}
	if !ok {
		return names, nil
	}
	var drift []string
	for _, n := range names {
		ok, err := b.linkMatches(n)
		if err == nil && ok {
			ok, err = b.fileMatches(cur+"/"+n, files[n])
		}
		if err != nil {
			return nil, fmt.Errorf("check drift: %w", err)
		}
		if !ok {
			drift = append(drift, n)
		}
	}
	return drift, nil
}

// Repair puts back what Drift reports. Missing or wrong links are made
// again; when the current version directory itself was changed (a file
// edited, deleted, chmod'ed or chown'ed), files are installed as a new
// version directory "<version>.<n>" and switched to, the damaged one
// being dropped, so that readers never see a half-repaired version.
func Repair(t Target, files map[string][]byte) error {
	names, err := checkFiles(files)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if err := checkTarget(t); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	defer lock(t)()
	b, err := open(t, false)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	defer b.close()
	cur, err := b.current()
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if cur == "" {
		return fmt.Errorf("repair: %w", errNoState)
	}
	kept, err := b.kept(cur)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if _, err := b.install(kept[0].version, names, files, cur); err != nil {
		return fmt.Errorf("repair version %s: %w", cur, err)
	}
	return nil
}

// current reads the current link.
func (b *binding) current() (string, error) {
	dir, err := b.state.Readlink(currentLink)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current link: %w", err)
	}
	if checkName("version", dir) != nil {
		return "", fmt.Errorf("read current link: it points at %q, not a version directory", dir)
	}
	return dir, nil
}

// kept reads the versions file and returns the kept version directories
// that exist, newest first: cur, then the others in the file's order, at
// most keep. It holds cur even when a crash came between the switch and
// the write of the versions file.
func (b *binding) kept(cur string) ([]keptVersion, error) {
	data, err := b.state.ReadFile(versionsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read versions: %w", err)
	}
	var listed []keptVersion
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 || len(f) > 2 || checkName("version", f[0]) != nil {
			continue
		}
		k := keptVersion{dir: f[0], version: f[0]}
		if len(f) == 2 && checkName("version", f[1]) == nil {
			k.version = f[1]
		}
		listed = append(listed, k)
	}
	var kept []keptVersion
	if cur != "" {
		k := keptVersion{dir: cur, version: cur}
		if i := slices.IndexFunc(listed, func(l keptVersion) bool { return l.dir == cur }); i >= 0 {
			k = listed[i]
		}
		kept = append(kept, k)
	}
	for _, l := range listed {
		if len(kept) == keep {
			break
		}
		if slices.ContainsFunc(kept, func(k keptVersion) bool { return k.dir == l.dir }) {
			continue
		}
		fi, err := b.state.Lstat(l.dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		kept = append(kept, l)
	}
	return kept, nil
}

// writeKept writes the versions file atomically, unless it already
// holds kept.
func (b *binding) writeKept(kept []keptVersion) error {
	var buf bytes.Buffer
	for _, k := range kept {
		buf.WriteString(k.dir)
		if k.version != k.dir {
			buf.WriteString(" " + k.version)
		}
		buf.WriteByte('\n')
	}
	if old, err := b.state.ReadFile(versionsFile); err == nil && bytes.Equal(old, buf.Bytes()) {
		return nil
	}
	if err := writeFileAtomic(b.state, versionsFile, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write versions: %w", err)
	}
	return nil
}

// reserved names cannot be version directories.
func reserved(name string) bool { return name == currentLink || name == versionsFile }

// pickDir returns the version directory for version: the first of
// version, version.1, version.2, … that is free, or an existing one that
// already holds exactly files (reuse).
func (b *binding) pickDir(version string, files map[string][]byte) (dir string, reuse bool, err error) {
	for n := 0; n < 1000; n++ {
		dir := version
		if n > 0 {
			dir = version + "." + strconv.Itoa(n)
		}
		if reserved(dir) {
			continue
		}
		_, err := b.state.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return dir, false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("look for version directory: %w", err)
		}
		same, err := b.versionMatches(dir, files)
		if err != nil {
			return "", false, err
		}
		if same {
			return dir, true, nil
		}
	}
	return "", false, fmt.Errorf("find a free version directory for %s: all 1000 names are taken", version)
}

// writeVersion writes files into a temporary directory and renames it to
// dir. Each file is created exclusively, owned and moded, then written and
// fsynced; the directory is owned, moded and fsynced before the rename,
// and the state directory after it.
func (b *binding) writeVersion(dir string, names []string, files map[string][]byte) (err error) {
	tmp := tmpName("dir")
	if err := b.state.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create version directory: %w", err)
	}
	defer func() {
		if err != nil {
			removeAll(b.state, tmp)
		}
	}()
	for _, n := range names {
		if err := b.writeFile(tmp+"/"+n, files[n]); err != nil {
			return err
		}
	}
	d, err := b.state.Open(tmp)
	if err != nil {
		return fmt.Errorf("open version directory: %w", err)
	}
	err = b.own(d, b.dirMode)
	if err == nil {
		err = d.Sync()
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("finish version directory: %w", err)
	}
	if err := b.state.Rename(tmp, dir); err != nil {
		return fmt.Errorf("rename version directory: %w", err)
	}
	return syncDir(b.state, ".")
}

func (b *binding) writeFile(name string, data []byte) error {
	f, err := b.state.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	err = b.own(f, b.mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	return nil
}

// own gives f the target's owner and mode.
func (b *binding) own(f *os.File, mode os.FileMode) error {
	if b.t.UID != -1 || b.t.GID != -1 {
		if err := f.Chown(b.t.UID, b.t.GID); err != nil {
			return err
		}
	}
	return f.Chmod(mode)
}

// switchTo points the current link at dir by renaming a new link over it.
func (b *binding) switchTo(dir string) error {
	tmp := tmpName("link")
	if err := b.state.Symlink(dir, tmp); err != nil {
		return fmt.Errorf("switch current link: %w", err)
	}
	if err := b.state.Rename(tmp, currentLink); err != nil {
		b.state.Remove(tmp)
		return fmt.Errorf("switch current link: %w", err)
	}
	return syncDir(b.state, ".")
}

// checkUserPaths refuses user-visible paths that are directories.
func (b *binding) checkUserPaths(names []string) error {
	for _, n := range names {
		fi, err := b.root.Lstat(n)
		if err == nil && fi.IsDir() {
			return fmt.Errorf("refuse to replace directory %s", filepath.Join(b.t.Dir, n))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", n, err)
		}
	}
	return nil
}

// ensureLinks makes each Dir/<name> the link to current/<name>, replacing
// what is there by renaming a new link over it, and removes this
// binding's links to files that are not in names. It fsyncs Dir when it
// changed anything.
func (b *binding) ensureLinks(names []string) (changed bool, err error) {
	for _, n := range names {
		ok, err := b.linkMatches(n)
		if err != nil {
			return changed, err
		}
		if ok {
			continue
		}
		fi, err := b.root.Lstat(n)
		if err == nil && fi.IsDir() {
			return changed, fmt.Errorf("refuse to replace directory %s", filepath.Join(b.t.Dir, n))
		}
		tmp := b.tmpLinkName()
		if err := b.root.Symlink(b.t.linkTarget(n), tmp); err != nil {
			return changed, fmt.Errorf("link %s: %w", n, err)
		}
		if err := b.root.Rename(tmp, n); err != nil {
			b.root.Remove(tmp)
			return changed, fmt.Errorf("link %s: %w", n, err)
		}
		changed = true
	}
	entries, err := readDir(b.root, ".")
	if err != nil {
		return changed, err
	}
	prefix := b.t.linkTarget("")
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 || slices.Contains(names, e.Name()) {
			continue
		}
		target, err := b.root.Readlink(e.Name())
		if err != nil {
			continue
		}
		if f, ok := strings.CutPrefix(target, prefix); ok && checkFileName(f) == nil {
			if err := b.root.Remove(e.Name()); err != nil {
				return changed, fmt.Errorf("remove link %s: %w", e.Name(), err)
			}
			changed = true
		}
	}
	if changed {
		return true, syncDir(b.root, ".")
	}
	return false, nil
}

// linkMatches tells whether Dir/<name> is the link to current/<name>.
func (b *binding) linkMatches(name string) (bool, error) {
	fi, err := b.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return false, nil
	}
	target, err := b.root.Readlink(name)
	if err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	return target == b.t.linkTarget(name), nil
}

// cleanTemps removes what a killed Install left: temporary entries in the
// state directory and this binding's temporary links in Dir.
func (b *binding) cleanTemps() error {
	entries, err := readDir(b.state, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := removeAll(b.state, e.Name()); err != nil {
				return err
			}
		}
	}
	entries, err = readDir(b.root, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), b.tmpLinkPrefix()) && e.Type()&fs.ModeSymlink != 0 {
			if err := b.root.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove leftover %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// tmpLinkName names a temporary link in Dir: ".tmp-<Name>~<random>"; "~"
// cannot be in a binding name, so bindings sharing Dir do not clean each
// other's links.
func (b *binding) tmpLinkName() string {
	return b.tmpLinkPrefix() + randomHex()
}

func (b *binding) tmpLinkPrefix() string {
	return tmpPrefix + b.t.Name + "~"
}

// prune deletes the version directories that are not kept, including
// those a killed Install renamed into place but did not switch to.
func (b *binding) prune(kept []keptVersion) error {
	entries, err := readDir(b.state, ".")
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || strings.HasPrefix(n, ".") || reserved(n) ||
			slices.ContainsFunc(kept, func(k keptVersion) bool { return k.dir == n }) {
			continue
		}
		if err := removeAll(b.state, n); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		return syncDir(b.state, ".")
	}
	return nil
}

// versionFiles lists the files of a version directory.
func (b *binding) versionFiles(dir string) ([]string, error) {
	entries, err := readDir(b.state, dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && checkFileName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("version directory %s holds no files", dir)
	}
	return names, nil
}

// versionMatches tells whether dir exists with the target's owner and mode
// and holds exactly files, each with the target's owner and mode.
func (b *binding) versionMatches(dir string, files map[string][]byte) (bool, error) {
	ok, err := b.dirMatches(dir)
	if err != nil || !ok {
		return false, err
	}
	entries, err := readDir(b.state, dir)
	if err != nil {
		return false, err
	}
	if len(entries) != len(files) {
		return false, nil
	}
	for _, e := range entries {
		want, ok := files[e.Name()]
		if !ok {
			return false, nil
		}
		if ok, err := b.fileMatches(dir+"/"+e.Name(), want); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// dirMatches tells whether the version directory dir exists with the
// target's owner and mode.
func (b *binding) dirMatches(dir string) (bool, error) {
	fi, err := b.state.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check version directory: %w", err)
	}
	return fi.IsDir() && fi.Mode().Perm() == b.dirMode && b.ownerMatches(fi), nil
}

// fileMatches tells whether name, in the state directory, is a regular
// file with the target's owner and mode and content want.
func (b *binding) fileMatches(name string, want []byte) (bool, error) {
	fi, err := b.state.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != b.mode || !b.ownerMatches(fi) || fi.Size() != int64(len(want)) {
		return false, nil
	}
	got, err := b.state.ReadFile(name)
	if err != nil {
		return false, fmt.Errorf("check %s: %w", name, err)
	}
	return bytes.Equal(got, want), nil
}

func (b *binding) ownerMatches(fi fs.FileInfo) bool {
	uid, gid, ok := fileOwner(fi)
	if !ok {
		return true
	}
	return (b.t.UID == -1 || uid == b.t.UID) && (b.t.GID == -1 || gid == b.t.GID)
}

// writeFileAtomic writes name in r through a temporary file, fsynced and
// renamed into place, and fsyncs the directory.
func writeFileAtomic(r *os.Root, name string, data []byte, perm os.FileMode) error {
	tmp := tmpName("file")
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.Rename(tmp, name)
	}
	if err != nil {
		r.Remove(tmp)
		return err
	}
	return syncDir(r, filepath.Dir(name))
}

// syncDir fsyncs the directory name in r, so that the names changed in it
// last.
func syncDir(r *os.Root, name string) error {
	d, err := r.Open(name)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

func readDir(r *os.Root, name string) ([]fs.DirEntry, error) {
	d, err := r.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return entries, nil
}

// removeAll removes name in r and all it holds, first making a directory
// writable so that its files can go (version directories may be 0550).
func removeAll(r *os.Root, name string) error {
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if fi.IsDir() {
		r.Chmod(name, 0o700)
	}
	if err := r.RemoveAll(name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// tmpName names a temporary entry of the state directory.
func tmpName(kind string) string {
	return tmpPrefix + kind + "-" + randomHex()
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
