// Command package writes certvault's .deb packages (internal/debpkg) from
// binaries built beforehand; make package builds them and runs it:
//
//	go run ./scripts/package --describe "$(git describe --always --dirty)" \
//	    --commit "$(git rev-parse HEAD)" --epoch "$SOURCE_DATE_EPOCH" \
//	    --bin dist/build --out dist
//
// It prints the path of each package written.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/certvault/certvault/internal/debpkg"
)

func main() {
	describe := flag.String("describe", "", "git describe --always --dirty of the tree (turned into the Debian version)")
	version := flag.String("version", "", "the Debian version itself, instead of --describe")
	commit := flag.String("commit", "", "commit the binaries were built from")
	epoch := flag.String("epoch", "", "modification time of every file, in seconds since 1970 (SOURCE_DATE_EPOCH or the commit's time)")
	bin := flag.String("bin", "dist/build", "directory with amd64/ and arm64/ folders of binaries")
	out := flag.String("out", "dist", "directory the packages are written to")
	root := flag.String("root", ".", "the repository (packaging/, systemd/, docs/)")
	flag.Parse()
	if err := run(*describe, *version, *commit, *epoch, *bin, *out, *root); err != nil {
		fmt.Fprintf(os.Stderr, "package: %v\n", err)
		os.Exit(1)
	}
}

func run(describe, version, commit, epoch, bin, out, root string) error {
	secs, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("--epoch %q: %w", epoch, err)
	}
	t := time.Unix(secs, 0).UTC()
	if version == "" {
		if version, err = debpkg.DebVersion(describe, t); err != nil {
			return fmt.Errorf("version: %w", err)
		}
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	paths, err := debpkg.Build{Version: version, Commit: commit, Time: t, Root: absRoot, Bin: bin, Out: out}.Write()
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	return nil
}
