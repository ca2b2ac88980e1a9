// Package install puts a certificate (or secret) version on disk for the
// certvault agent: so that no reader ever sees the key of one version
// beside the certificate of another, with the owner and mode the binding
// asks for, and so that it can switch back to an earlier version. It does
// not talk to the vault, run hooks or watch files.
//
// ParseBundle, Check and Render turn a managed secret's value into the
// files of a binding (cert, chain, fullchain, key, combined, pfx); Install
// puts those files on disk the way kubernetes' atomic_writer does.
//
// # Layout
//
// A binding is a directory Dir and a name. Its state lives under
// Dir/.certvault/<Name>/:
//
//	Dir/cert.pem -> .certvault/www/current/cert.pem   (one relative link per file)
//	Dir/key.pem  -> .certvault/www/current/key.pem
//	Dir/.certvault/                 0755
//	Dir/.certvault/www/             0755
//	Dir/.certvault/www/current  -> 7f3a                (relative link, swapped atomically)
//	Dir/.certvault/www/versions     kept version directories, newest first
//	Dir/.certvault/www/7f3a/        a version: the binding's mode plus x where r is set
//	Dir/.certvault/www/7f3a/cert.pem  the binding's owner and mode
//	Dir/.certvault/www/7f3a/key.pem
//	Dir/.certvault/www/7e01/        the version before, kept for Switch
//
// A version directory is named after the vault's version. When the same
// version is installed again with other content (which the vault should
// never do), or Repair rewrites a damaged version, or the version is
// "current" or "versions", the directory is "<version>.<n>" with the
// first free n. Current, Kept, Switch and Result speak of these directory
// names; the versions file keeps the vault's version beside each.
//
// The three newest version directories by switch order are kept (the
// current one and two before it); older ones are deleted.
//
// # Crash safety
//
// Install writes a version into a temporary directory (".tmp-" prefix),
// with each file created exclusively, owned and moded before it has any
// content, and fsynced; then it renames the directory into place, points
// the "current" link at it by renaming a new link over the old one, and
// fsyncs each directory it changed; temporary links in Dir are named
// ".tmp-<Name>~…". A reader that follows Dir/<file>
// therefore sees the old version or the new one, wholly, whenever the
// process is killed, and the next Install removes what a killed one left.
// The one exception is the first Install over files that were regular
// files before: the files are replaced by links one by one.
//
// Each link Dir/<file> goes through "current" on its own. A reader that
// opens cert.pem and later key.pem while a switch happens may pair the old
// certificate with the new key. A service reloaded after Install returns
// (as the agent's hooks do) reads one version. A reader that may run
// during a switch and needs a consistent pair resolves the current link
// once (os.Readlink of Dir/.certvault/<Name>/current, or
// filepath.EvalSymlinks of Dir/cert.pem and taking its directory) and
// opens every file relative to that directory. A version directory
// outlives two more installs; a reader slower than that may find it gone
// and must start again.
//
// Install, Switch and Repair of one binding are serialised within the
// process; the agent is the only writer of a binding.
package install
