// Command certvaultd runs a certvault server node. With no flags it starts
// the embedded default: a single-node cluster with its data in
// ./certvault-data, the API on https://127.0.0.1:8443 and raft on
// 127.0.0.1:8201.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/certvault/certvault/internal/gctune"
	"github.com/certvault/certvault/internal/version"
	"github.com/certvault/certvault/vault"
)

const usage = `certvaultd runs a certvault server node.

Usage:
  certvaultd [--config FILE] [flags]
  certvaultd check-config [--config FILE] [flags]

With no flags and no configuration file it starts the embedded default: a
new single-node cluster with its data in ./certvault-data, the HTTPS API
on 127.0.0.1:8443 and raft on 127.0.0.1:8201. It prints how to point the
certvault CLI at it.

Configuration file: every flag below is also a key of a YAML file, written
without its dashes, e.g.

  data: /var/lib/certvault
  node-id: vault1
  listen: 10.0.0.1:8443
  raft-listen: 10.0.0.1:8201
  log-format: json

certvaultd reads --config FILE, or /etc/certvault/certvaultd.yaml when
--config is not given and that file exists (--config "" reads none). A
flag on the command line wins over the file. Unknown keys and bad values
stop the start with the file and line of each problem. --join-token is
not a key: give it as CERTVAULT_JOIN_TOKEN (the packaged unit reads
/etc/certvault/certvaultd.env). Secrets stay in files of their own:
--seal-key-file, --pkcs11-pin-file, --smtp-password-file.

'certvaultd check-config' reads the file and the flags as a start would,
checks every value and that the files they name exist, prints what it
found and exits: 0 when the configuration is valid, 1 when it is not
(each problem on a line of its own, as FILE:LINE: KEY "VALUE": MESSAGE),
2 for a usage error. It starts nothing.

To grow a cluster, print a join token on any node ('certvault cluster
join-token'), copy the cluster's seal key to the new machine, and start:

  CERTVAULT_JOIN_TOKEN=cvj.... certvaultd --data /var/lib/certvault \
    --node-id vault2 --listen 10.0.0.2:8443 --raft-listen 10.0.0.2:8201 \
    --join https://10.0.0.1:8443 --seal-key-file /etc/certvault/seal.key

To keep the data key wrapped by an HSM instead of a key file, and to
generate RSA-HSM and EC-HSM keys there (every node must reach the same
token; the PIN is read from a file):

  certvaultd --seal pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so \
    --pkcs11-token-label certvault --pkcs11-pin-file /etc/certvault/hsm.pin

A node that has state in --data restarts with it; --join is then ignored.
SIGTERM or SIGINT drains requests, hands leadership over and stops. Exit
status: 0 after a clean stop, 1 on a failure while running, 2 for a usage
or configuration error.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "check-config" {
		return checkConfig(args[1:], os.Stdout, os.Stderr)
	}
	s, code, ok := load(args, os.Stderr)
	if !ok {
		return code
	}
	if s.showVersion {
		fmt.Println(version.String("certvaultd"))
		return 0
	}
	o := s.o
	if o.JoinToken == "" {
		o.JoinToken = os.Getenv("CERTVAULT_JOIN_TOKEN")
	}
	if s.mailer.Addr != "" {
		o.Mailer = &s.mailer
	}
	level, format := s.logging()
	hopts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	} else {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	}
	o.Banner = os.Stdout
	if s.configPath != "" {
		o.Logger.Info("configuration file read", "path", s.configPath, "settings", len(s.origin.Lines))
	}

	if os.Getenv("GOGC") == "" {
		// A small heap collects half as often as Go's default (GOGC
		// 200), which buys throughput for little memory; a large one
		// (a million certificate versions hold about 700 MB) gets at
		// most 256 MiB + half its size as headroom instead of twice
		// its size. GOGC overrides.
		gctune.Start(gctune.Config{MaxPercent: 200, Fixed: 256 << 20})
	}
	if s.pprofListen != "" {
		ln, err := net.Listen("tcp", s.pprofListen)
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
