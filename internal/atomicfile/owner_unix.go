//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// ownedBy reports whether fi's file belongs to owner.
func ownedBy(fi os.FileInfo, owner Owner) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == owner.UID && int(st.Gid) == owner.GID
}
