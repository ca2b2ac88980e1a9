package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/flagfile"
	"github.com/certvault/certvault/internal/yamlfile"
	"github.com/certvault/certvault/vault"
	"github.com/certvault/certvault/vault/notify"
	"github.com/spf13/pflag"
)

// defaultConfig is the configuration file read when --config is not given
// and the file exists (the .deb package installs it).
const defaultConfig = "/etc/certvault/certvaultd.yaml"

// fileOptions are the flags the configuration file may not set, and why.
var fileOptions = flagfile.Options{
	Refused: map[string]string{
		"config":     "names the configuration file itself: give --config on the command line",
		"version":    "is an action, not a setting: run certvaultd --version",
		"join-token": "is a secret and stays out of this file: set CERTVAULT_JOIN_TOKEN (the packaged unit reads /etc/certvault/certvaultd.env, mode 0600)",
	},
	Help: "certvaultd --help",
}

// settings are what the flags and the configuration file set.
type settings struct {
	o                                vault.Options
	mailer                           notify.Mailer
	logLevel, logFormat, pprofListen string
	showVersion                      bool
	// configPath is the configuration file read, or "" for none.
	configPath string
	// origin tells which flags the file set, and on which line.
	origin flagfile.Origin
}

// newFlagSet defines certvaultd's flags on s. Each is also a key of the
// configuration file (fileOptions.Refused aside).
func newFlagSet(s *settings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("certvaultd", pflag.ContinueOnError)
	fs.SortFlags = false
	o := &s.o
	fs.StringVar(&s.configPath, "config", defaultConfig, "YAML configuration file whose keys are these flags (read only when it exists unless given; \"\" reads none); flags win over it")
	fs.StringVar(&o.DataDir, "data", "certvault-data", "data directory (raft log, snapshots, node identity, seal key)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "HTTPS API listen address")
	fs.StringVar(&o.APIAddr, "api-addr", "", "URL other nodes and clients use for this node's API (default https://LISTEN)")
	fs.StringVar(&o.RaftListen, "raft-listen", "127.0.0.1:8201", "raft listen address (mutual TLS between nodes)")
	fs.StringVar(&o.RaftAddr, "raft-addr", "", "raft address other nodes dial (default --raft-listen)")
	fs.StringVar(&o.NodeID, "node-id", "", "this node's ID in the cluster (default: recorded in --data, else the hostname)")
	fs.StringVar(&o.JoinURL, "join", "", "join the cluster whose node answers at this URL instead of creating one")
	fs.StringVar(&o.JoinToken, "join-token", "", "join token from 'certvault cluster join-token' (better: set CERTVAULT_JOIN_TOKEN; not a key of the configuration file)")
	fs.StringVar(&o.Seal, "seal", "file", "what wraps the vault's data key: file (--seal-key-file) or pkcs11 (a key inside the HSM)")
	fs.StringVar(&o.SealKeyFile, "seal-key-file", "", "file seal key (default DATA/seal.key; a joining node needs a copy of the cluster's)")
	fs.StringVar(&o.PKCS11.Module, "pkcs11-module", "", "PKCS#11 library of the HSM, e.g. /usr/lib/softhsm/libsofthsm2.so (for --seal pkcs11 and RSA-HSM/EC-HSM keys)")
	fs.StringVar(&o.PKCS11.TokenLabel, "pkcs11-token-label", "", "label of the HSM token that holds the vault's keys (every node must reach the same token)")
	fs.StringVar(&o.PKCS11.PINFile, "pkcs11-pin-file", "", "file holding the token's user PIN (never give the PIN itself on the command line)")
	fs.StringVar(&s.mailer.Addr, "smtp-addr", "", "SMTP relay HOST:PORT for mail to the certificate contacts (renewals, failures, EmailContacts)")
	fs.StringVar(&s.mailer.From, "smtp-from", "", "sender address of the vault's mail, e.g. certvault@example.com")
	fs.StringVar(&s.mailer.TLS, "smtp-tls", "auto", "auto (STARTTLS, required unless the relay is on a loopback address), starttls, or implicit (port 465)")
	fs.StringVar(&s.mailer.Username, "smtp-user", "", "SMTP user name (with --smtp-password-file)")
	fs.StringVar(&s.mailer.PasswordFile, "smtp-password-file", "", "file holding the SMTP password")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "operator-provided API server certificate (PEM chain); default: issued by the vault CA")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.Uint64Var(&o.SnapshotThreshold, "snapshot-threshold", 0, "the fewest log entries between raft snapshots (default 8192; a large state waits longer, about a quarter of its snapshot's bytes of log)")
	fs.Uint64Var(&o.TrailingLogs, "trailing-logs", 0, "log entries kept behind a snapshot for slow followers (default 10240)")
	fs.DurationVar(&o.SnapshotInterval, "snapshot-interval", 0, "how often raft checks --snapshot-threshold (default 30s)")
	fs.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&s.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.RaftLogLevel, "raft-log-level", "warn", "hashicorp/raft's own log level")
	fs.IntVar(&o.AuditSegmentMB, "audit-segment-mb", 256, "size in MiB at which DATA/audit/audit.jsonl becomes a segment (audit-SEQ.jsonl) and a new file starts; ship and remove old segments as your retention requires")
	fs.DurationVar(&o.RaftTimeout, "raft-timeout", time.Second, "raft's heartbeat and election timeout, the same on every node (100ms to 1m): a leader that has not heard from a quorum for half of it steps down; raise it on slow links or CPU-starved machines where leadership flaps, at the price of slower failover")
	fs.DurationVar(&o.RequestDeadline, "request-deadline", 5*time.Second, "longest wait for the leader: a write a follower passes on (until the leader's answer starts) and a linearizable read (the read index and catching up with it); past it the client gets 503 with Retry-After instead of waiting for an election or a partition to heal")
	fs.DurationVar(&o.BodyReadTimeout, "body-read-timeout", 30*time.Second, "longest time a request body may take to arrive after its headers (a snapshot upload: the longest pause between two chunks); past it the client gets 408 and the connection is closed")
	fs.BoolVar(&o.UI, "ui", true, "serve the web console at https://HOST:PORT/ui/ on the API listener (sign in with a certvault token; --ui=false turns it off)")
	fs.IntVar(&o.MaxUnauthenticatedRequests, "max-unauthenticated-requests", 64, "requests without a credential (and node joins, agent enrollments) served at once; more get 503 with Retry-After before their body is read")
	fs.IntVar(&o.MetricsCertificates, "metrics-certificates", 10000, "how many certificates /metrics gives their own expiry and renewal-due series: those expiring soonest (every certificate still counts in certvault_certificates_expiring); -1 gives none")
	fs.IntVar(&o.DiskReserveMB, "disk-reserve-mb", 0, "free space in MiB kept on the file system of DATA/raft: below it the node refuses writes (507 InsufficientStorage) until space is freed, so that raft and the audit trail keep room; 0 means 5% of the file system, at most 64; -1 turns the check off")
	fs.DurationVar(&o.RetentionInterval, "retention-interval", 10*time.Minute, "how often the leader purges the old versions that version retention lets go ('certvault settings set --retain-versions N'; off by default), in batches of at most 100 versions and 1,000 per round")
	fs.StringVar(&s.pprofListen, "pprof-listen", "", "serve Go profiles (net/http/pprof, plain HTTP) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	fs.BoolVar(&s.showVersion, "version", false, "print the version, commit and Go version, then exit")
	return fs
}

// parseArgs parses args into new settings. On a problem it writes it to
// stderr after prefix and returns false with the exit code: 0 for --help,
// 2 for a usage error.
func parseArgs(args []string, prefix string, stderr io.Writer) (*settings, *pflag.FlagSet, int, bool) {
	s := &settings{}
	fs := newFlagSet(s)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, nil, 0, false
		}
		fmt.Fprintf(stderr, "%s: %v\nRun 'certvaultd --help' for usage.\n", prefix, err)
		return nil, nil, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\nRun 'certvaultd --help' for usage.\n", prefix, fs.Arg(0))
		return nil, nil, 2, false
	}
	return s, fs, 0, true
}

// load parses args and the configuration file and checks the result. On
// a problem it writes it to stderr and returns false with the exit code:
// 0 for --help, 2 for a usage or configuration error.
func load(args []string, stderr io.Writer) (*settings, int, bool) {
	s, fs, code, ok := parseArgs(args, "certvaultd", stderr)
	if !ok {
		return nil, code, false
	}
	if s.showVersion {
		return s, 0, true
	}
	if err := s.readConfig(fs); err != nil {
		report(stderr, "certvaultd", strings.Split(err.Error(), "\n"))
		return nil, 2, false
	}
	if probs := s.check(); len(probs) > 0 {
		report(stderr, "certvaultd", probs)
		return nil, 2, false
	}
	return s, 0, true
}

// readConfig applies the configuration file to the flags the command line
// left unset. s.configPath ends up "" when no file was read.
func (s *settings) readConfig(flags *pflag.FlagSet) error {
	if s.configPath == "" {
		return nil
	}
	data, err := os.ReadFile(s.configPath)
	if errors.Is(err, fs.ErrNotExist) && !flags.Changed("config") {
		s.configPath = "" // the default file is optional
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the configuration file: %w", err)
	}
	s.origin, err = flagfile.Apply(flags, data, s.configPath, fileOptions)
	return err // a *yamlfile.Error: each line names the file and line
}

// report writes each problem on a line of its own after prefix.
func report(w io.Writer, prefix string, probs []string) {
	for _, p := range probs {
		fmt.Fprintf(w, "%s: %s\n", prefix, p)
	}
}

// problem names flag's value and says what is wrong with it: at its file
// and line when the configuration file set it, else as the flag.
func (s *settings) problem(flag, value, format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	if line := s.origin.Line(flag); line > 0 {
		return yamlfile.Problem{Line: line, Field: flag, Value: value, Message: msg}.Format(s.origin.Path)
	}
	if value == "" {
		return fmt.Sprintf("--%s: %s", flag, msg)
	}
	return fmt.Sprintf("--%s %s: %s", flag, value, msg)
}

// check returns the problems of values that each flag's own type accepts
// but certvaultd does not, and of flags that go together.
func (s *settings) check() []string {
	var probs []string
	o := &s.o
	if (s.mailer.Addr == "") != (s.mailer.From == "") {
		missing, given := "smtp-from", "smtp-addr"
		if s.mailer.Addr == "" {
			missing, given = given, missing
		}
		probs = append(probs, s.problem(given, "", "needs --%s too (a relay and a sender go together)", missing))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		probs = append(probs, s.problem(map[bool]string{true: "tls-key", false: "tls-cert"}[o.TLSCert == ""], "", "--tls-cert and --tls-key go together"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"request-deadline", o.RequestDeadline}, {"body-read-timeout", o.BodyReadTimeout}, {"retention-interval", o.RetentionInterval}} {
		if d.v <= 0 {
			probs = append(probs, s.problem(d.flag, d.v.String(), "give a positive duration, e.g. 5s"))
		}
	}
	if o.RaftTimeout < 100*time.Millisecond || o.RaftTimeout > time.Minute {
		probs = append(probs, s.problem("raft-timeout", o.RaftTimeout.String(), "use 100ms to 1m (default 1s), the same on every node"))
	}
	if o.MaxUnauthenticatedRequests <= 0 {
		probs = append(probs, s.problem("max-unauthenticated-requests", fmt.Sprint(o.MaxUnauthenticatedRequests), "give a positive number"))
	}
	if o.Seal != "file" && o.Seal != "pkcs11" {
		probs = append(probs, s.problem("seal", o.Seal, "use file or pkcs11"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		probs = append(probs, s.problem("log-level", s.logLevel, "use debug, info, warn or error"))
	}
	if f := strings.ToLower(s.logFormat); f != "text" && f != "json" {
		probs = append(probs, s.problem("log-format", s.logFormat, "use text or json"))
	}
	if s.pprofListen != "" {
		if err := checkPprofAddr(s.pprofListen); err != nil {
			probs = append(probs, s.problem("pprof-listen", s.pprofListen, "%v", err))
		}
	}
	return probs
}

// logging returns the checked log level and format.
func (s *settings) logging() (slog.Level, string) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		level = slog.LevelInfo // check refused it before; not reached
	}
	return level, strings.ToLower(s.logFormat)
}

// checkPprofAddr accepts only a loopback HOST:PORT: profiles show the
// process's internals and are served without TLS or a token.
func checkPprofAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not HOST:PORT: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("not a loopback address; profiles are served without authentication, use 127.0.0.1:PORT")
	}
	return nil
}

// inputFiles are the flags that name files certvaultd reads (and does
// not create), which check-config looks for.
var inputFiles = []string{"pkcs11-module", "pkcs11-pin-file", "smtp-password-file", "tls-cert", "tls-key"}

// checkFiles returns a problem for each file a flag names that is not a
// readable regular file. The seal key counts only for a joining node
// (a new cluster's first node creates its own).
func (s *settings) checkFiles() []string {
	values := map[string]string{
		"pkcs11-module": s.o.PKCS11.Module, "pkcs11-pin-file": s.o.PKCS11.PINFile,
		"smtp-password-file": s.mailer.PasswordFile, "tls-cert": s.o.TLSCert, "tls-key": s.o.TLSKey,
	}
	names := inputFiles
	if s.o.JoinURL != "" && s.o.SealKeyFile != "" {
		values["seal-key-file"] = s.o.SealKeyFile
		names = append(names[:len(names):len(names)], "seal-key-file")
	}
	var probs []string
	for _, name := range names {
		path := values[name]
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err == nil {
			var st os.FileInfo
			st, err = f.Stat()
			if err == nil && !st.Mode().IsRegular() {
				err = errors.New("not a regular file")
			}
			f.Close()
		}
		if err != nil {
			probs = append(probs, s.problem(name, path, "cannot be read: %v", unwrapPath(err)))
		}
	}
	return probs
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkConfig is 'certvaultd check-config': it reads the flags and the
// configuration file as a start would, checks them and the files they
// name, and says what it found. Exit status 0 valid, 1 invalid, 2 usage.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	s, fs, code, ok := parseArgs(args, "certvaultd check-config", stderr)
	if !ok {
		return code
	}
	if !fs.Changed("config") {
		if _, err := os.Stat(defaultConfig); err != nil {
			fmt.Fprintf(stderr, "certvaultd check-config: no configuration file: %s: %v; give --config FILE\n", defaultConfig, unwrapPath(err))
			return 1
		}
	}
	if err := s.readConfig(fs); err != nil {
		report(stderr, "certvaultd check-config", strings.Split(err.Error(), "\n"))
		return 1
	}
	if probs := append(s.check(), s.checkFiles()...); len(probs) > 0 {
		report(stderr, "certvaultd check-config", probs)
		return 1
	}
	where := "flags only (--config \"\")"
	if s.configPath != "" {
		where = fmt.Sprintf("%s: %d settings", s.configPath, len(s.origin.Lines))
	}
	fmt.Fprintf(stdout, "configuration valid: %s; data %s, API %s, raft %s\n", where, s.o.DataDir, s.o.Listen, s.o.RaftListen)
	return 0
}
