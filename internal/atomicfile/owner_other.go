//go:build !unix

package atomicfile

import "os"

// ownedBy reports false: without Unix owners the file is always written.
func ownedBy(os.FileInfo, Owner) bool { return false }
