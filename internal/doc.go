// Package internal holds code shared by certvault's binaries that is not a
// public API; each concern lives in its own sub-package (atomicfile, ...).
package internal
