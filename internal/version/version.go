// Package version tells which build a certvault binary is: the release
// version stamped by the Makefile, the commit and the Go version it was
// built with. It owns nothing else; certvaultd, certvault and
// certvault-agent print it for --version. It imports only the standard
// library, so the static agent may use it.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version. The Makefile sets it with
//
//	-ldflags "-X github.com/certvault/certvault/internal/version.Version=$(git describe --always --dirty)"
//
// and a plain go build leaves it "dev".
var Version = "dev"

// Commit is the commit the Makefile found with git rev-parse HEAD (set with
// -X like Version). It is used when the build information records no VCS
// revision, e.g. under GOFLAGS=-buildvcs=false.
var Commit = ""

// Info describes one build.
type Info struct {
	// Version is the release version (see Version).
	Version string
	// Commit is the VCS revision the binary was built from, with
	// "-dirty" appended when the tree had uncommitted changes, or
	// the Makefile's Commit when the build recorded none (-buildvcs=false),
	// else "unknown" (go run).
	Commit string
	// GoVersion is the Go toolchain that built the binary, e.g. go1.26.1.
	GoVersion string
}

// Get returns the build information of the running binary.
func Get() Info {
	info := Info{Version: Version, Commit: "unknown", GoVersion: runtime.Version()}
	if Commit != "" {
		info.Commit = Commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		info.Commit = rev
		if modified {
			info.Commit += "-dirty"
		}
	}
	return info
}

// String renders the line printed by --version, e.g.
// "certvaultd v0.3.0-12-gabc1234 (commit abc1234..., go1.26.1)".
func String(program string) string {
	i := Get()
	return fmt.Sprintf("%s %s (commit %s, %s)", program, i.Version, i.Commit, i.GoVersion)
}
