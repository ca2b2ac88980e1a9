// Command certvaultd runs a certvault server node. With no flags it starts
// the embedded default: a single-node cluster with its data in
// ./certvault-data, the API on https://127.0.0.1:8443 and raft on
// 127.0.0.1:8201.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/certvault/certvault/internal/version"
	"github.com/certvault/certvault/vault"
	"github.com/certvault/certvault/vault/notify"
	"github.com/spf13/pflag"
)

const usage = `certvaultd runs a certvault server node.

With no flags it starts the embedded default: a new single-node cluster with
its data in ./certvault-data, the HTTPS API on 127.0.0.1:8443 and raft on
127.0.0.1:8201. It prints how to point the certvault CLI at it.

To grow a cluster, print a join token on any node ('certvault cluster
join-token'), copy the cluster's seal key to the new machine, and start:

  certvaultd --data /var/lib/certvault --node-id vault2 \
    --listen 10.0.0.2:8443 --raft-listen 10.0.0.2:8201 \
    --join https://10.0.0.1:8443 --join-token cvj.... \
    --seal-key-file /etc/certvault/seal.key

To keep the data key wrapped by an HSM instead of a key file, and to
generate RSA-HSM and EC-HSM keys there (every node must reach the same
token; the PIN is read from a file):

  certvaultd --seal pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
    --pkcs11-token-label certvault --pkcs11-pin-file /etc/certvault/hsm.pin

A node that has state in --data restarts with it; --join is then ignored.
SIGTERM or SIGINT drains requests, hands leadership over and stops.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := pflag.NewFlagSet("certvaultd", pflag.ContinueOnError)
	fs.SortFlags = false
	var o vault.Options
	var logLevel, logFormat, pprofListen string
	var showVersion bool
	var mailer notify.Mailer
	fs.StringVar(&o.DataDir, "data", "certvault-data", "data directory (raft log, snapshots, node identity, seal key)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "HTTPS API listen address")
	fs.StringVar(&o.APIAddr, "api-addr", "", "URL other nodes and clients use for this node's API (default https://LISTEN)")
	fs.StringVar(&o.RaftListen, "raft-listen", "127.0.0.1:8201", "raft listen address (mutual TLS between nodes)")
	fs.StringVar(&o.RaftAddr, "raft-addr", "", "raft address other nodes dial (default --raft-listen)")
	fs.StringVar(&o.NodeID, "node-id", "", "this node's ID in the cluster (default: recorded in --data, else the hostname)")
	fs.StringVar(&o.JoinURL, "join", "", "join the cluster whose node answers at this URL instead of creating one")
	fs.StringVar(&o.JoinToken, "join-token", "", "join token from 'certvault cluster join-token' (or set CERTVAULT_JOIN_TOKEN)")
	fs.StringVar(&o.Seal, "seal", "file", "what wraps the vault's data key: file (--seal-key-file) or pkcs11 (a key inside the HSM)")
	fs.StringVar(&o.SealKeyFile, "seal-key-file", "", "file seal key (default DATA/seal.key; a joining node needs a copy of the cluster's)")
	fs.StringVar(&o.PKCS11.Module, "pkcs11-module", "", "PKCS#11 library of the HSM, e.g. /usr/lib/softhsm/libsofthsm2.so (for --seal pkcs11 and RSA-HSM/EC-HSM keys)")
	fs.StringVar(&o.PKCS11.TokenLabel, "pkcs11-token-label", "", "label of the HSM token that holds the vault's keys (every node must reach the same token)")
	fs.StringVar(&o.PKCS11.PINFile, "pkcs11-pin-file", "", "file holding the token's user PIN (never give the PIN itself on the command line)")
	fs.StringVar(&mailer.Addr, "smtp-addr", "", "SMTP relay HOST:PORT for mail to the certificate contacts (renewals, failures, EmailContacts)")
	fs.StringVar(&mailer.From, "smtp-from", "", "sender address of the vault's mail, e.g. certvault@example.com")
	fs.StringVar(&mailer.TLS, "smtp-tls", "auto", "auto (STARTTLS, required unless the relay is on a loopback address), starttls, or implicit (port 465)")
	fs.StringVar(&mailer.Username, "smtp-user", "", "SMTP user name (with --smtp-password-file)")
	fs.StringVar(&mailer.PasswordFile, "smtp-password-file", "", "file holding the SMTP password")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "operator-provided API server certificate (PEM chain); default: issued by the vault CA")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.Uint64Var(&o.SnapshotThreshold, "snapshot-threshold", 0, "log entries between raft snapshots (default 8192)")
	fs.Uint64Var(&o.TrailingLogs, "trailing-logs", 0, "log entries kept behind a snapshot for slow followers (default 10240)")
	fs.DurationVar(&o.SnapshotInterval, "snapshot-interval", 0, "how often raft checks --snapshot-threshold (default 30s)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
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
	fs.StringVar(&pprofListen, "pprof-listen", "", "serve Go profiles (net/http/pprof, plain HTTP) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	fs.BoolVar(&showVersion, "version", false, "print the version, commit and Go version, then exit")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "certvaultd: %v\nRun 'certvaultd --help' for usage.\n", err)
		return 2
	}
	if showVersion {
		fmt.Println(version.String("certvaultd"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "certvaultd: unexpected argument %q\nRun 'certvaultd --help' for usage.\n", fs.Arg(0))
		return 2
	}
	if o.JoinToken == "" {
		o.JoinToken = os.Getenv("CERTVAULT_JOIN_TOKEN")
	}
	if mailer.Addr != "" || mailer.From != "" {
		if mailer.Addr == "" || mailer.From == "" {
			fmt.Fprintln(os.Stderr, "certvaultd: --smtp-addr and --smtp-from go together")
			return 2
		}
		o.Mailer = &mailer
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--request-deadline", o.RequestDeadline}, {"--body-read-timeout", o.BodyReadTimeout}, {"--retention-interval", o.RetentionInterval}} {
		if d.v <= 0 {
			fmt.Fprintf(os.Stderr, "certvaultd: %s %v: give a positive duration, e.g. 5s\n", d.flag, d.v)
			return 2
		}
	}
	if o.RaftTimeout < 100*time.Millisecond || o.RaftTimeout > time.Minute {
		fmt.Fprintf(os.Stderr, "certvaultd: --raft-timeout %v: use 100ms to 1m (default 1s), the same on every node\n", o.RaftTimeout)
		return 2
	}
	if o.MaxUnauthenticatedRequests <= 0 {
		fmt.Fprintf(os.Stderr, "certvaultd: --max-unauthenticated-requests %d: give a positive number\n", o.MaxUnauthenticatedRequests)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "certvaultd: --log-level %q: use debug, info, warn or error\n", logLevel)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(logFormat) {
	case "text":
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	case "json":
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	default:
		fmt.Fprintf(os.Stderr, "certvaultd: --log-format %q: use text or json\n", logFormat)
		return 2
	}
	o.Banner = os.Stdout

	if os.Getenv("GOGC") == "" {
		// The vault's state is small and lives in memory; collecting half
		// as often buys throughput for little memory. GOGC overrides.
		debug.SetGCPercent(200)
	}
	if pprofListen != "" {
		ln, err := listenPprof(pprofListen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "certvaultd: --pprof-listen: %v\n", err)
			return 2
		}
		defer ln.Close()
		go http.Serve(ln, pprofMux()) //nolint:errcheck // ends when ln closes
	}
	raiseFileLimit(o.Logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := vault.Run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "certvaultd: %v\n", err)
		return 1
	}
	return 0
}

// listenPprof listens on addr, which must be a loopback address: profiles
// show the process's internals and are served without TLS or a token.
func listenPprof(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q is not HOST:PORT: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%q is not a loopback address; profiles are served without authentication, use 127.0.0.1:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// pprofMux serves the standard profiles under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// agentsPerNode is how many long-polling agents one node is sized for;
// each holds a connection, so the node needs about that many descriptors.
const agentsPerNode = 10000

// raiseFileLimit lifts the soft limit on open files to the hard limit:
// every agent keeps a connection open while it long-polls. It says so when
// the limit stays below what agentsPerNode agents need.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	const need = agentsPerNode + 1024
	if lim.Cur < need {
		log.Warn("the open-file limit is too low for many agents: raise it (LimitNOFILE= in the unit, ulimit -n)",
			"limit", lim.Cur, "needed_for_10000_agents", need)
	}
}
