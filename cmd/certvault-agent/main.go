// Command certvault-agent runs on each machine that needs certificates or
// secrets from a certvault vault: it joins the vault once with a join
// token, then installs the versions of its bindings atomically, reloads
// the services that use them, checks that the change took, and rolls back
// when it did not. It is a static binary (CGO_ENABLED=0) that imports
// nothing from the vault's server code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/certvault/certvault/agent/config"
	"github.com/certvault/certvault/agent/enroll"
	"github.com/certvault/certvault/agent/midentity"
	"github.com/certvault/certvault/agent/runner"
	"github.com/certvault/certvault/internal/version"
)

const usage = `certvault-agent installs certificates and secrets from a certvault vault.

Usage:
  certvault-agent join --vault URL --token T --ca-fingerprint sha256:HEX --state-dir DIR [--name NAME]
  certvault-agent run [--config /etc/certvault/agent.yaml] [--log-level info]
  certvault-agent status [--config FILE | --state-dir DIR] [-o json]
  certvault-agent check-config [--config FILE]
  certvault-agent --version

join     enrolls this machine: checks the vault's CA against the fingerprint,
         makes a key here (it never leaves the machine), gets the agent's
         certificate and stores both (0600) in the state directory. The token
         and fingerprint come from 'certvault agent join-token create'.
run      installs and keeps up to date what the configuration binds; reloads
         the configuration on SIGHUP or when the file changes. Speaks
         sd_notify (Type=notify, WatchdogSec) under systemd. With a
         managed_identity section it also hands vault tokens to local
         applications as Azure App Service does: an application sets
         IDENTITY_ENDPOINT=http://LISTEN/msi/token and IDENTITY_HEADER from
         its identity's env_file (systemd: EnvironmentFile=), and the Azure
         SDKs' ManagedIdentityCredential works unchanged (docs/agent.md).
status   prints each binding's installed version, last check and last error
         from the local state (works while the vault is down).
check-config
         loads and validates the configuration, printing every problem with
         its line; exit 1 when it does not load.
--version
         prints the version, commit and Go version of this binary.

Exit status: 0 on success, 1 on an error, 2 on a usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(stdout, version.String("certvault-agent"))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "join":
		err = cmdJoin(ctx, args[1:], stdout)
	case "run":
		err = cmdRun(ctx, args[1:], stderr)
	case "status":
		err = cmdStatus(args[1:], stdout)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout)
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "certvault-agent: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'certvault-agent --help' for usage.")
		return 2
	}
	return 1
}

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

// flags makes a flag set whose errors are usage errors.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("certvault-agent "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(usage)
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

const defaultConfig = "/etc/certvault/agent.yaml"

func cmdJoin(ctx context.Context, args []string, out io.Writer) error {
	fs := flags("join")
	vault := fs.String("vault", "", "vault URL, https://HOST:PORT")
	token := fs.String("token", "", "join token (cva.…); or - to read it from standard input")
	fp := fs.String("ca-fingerprint", "", "sha256:HEX of the vault CA, as 'certvault agent join-token create' prints it")
	stateDir := fs.String("state-dir", "/var/lib/certvault-agent", "where the identity is kept")
	name := fs.String("name", "", "this machine's name in the vault (default: the host name)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *vault == "" || *token == "" || *fp == "" {
		return usageError{errors.New("--vault, --token and --ca-fingerprint are required")}
	}
	if *token == "-" {
		data, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return fmt.Errorf("read token: %w", err)
		}
		*token = strings.TrimSpace(string(data))
	}
	id, err := enroll.Join(ctx, enroll.JoinConfig{VaultURL: *vault, Token: *token, CAFingerprint: *fp, StateDir: *stateDir, Name: *name})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "joined as agent %s (group %s); identity in %s, valid until %s\n", id.AgentID, id.Group, *stateDir, id.Expiry().UTC().Format(time.RFC3339))
	return nil
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flags("run")
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", *level)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	abs, err := filepath.Abs(*cfgPath)
	if err != nil {
		return err
	}
	return runner.Run(ctx, runner.Options{ConfigPath: abs, Logger: log})
}

func cmdCheckConfig(args []string, out io.Writer) error {
	fs := flags("check-config")
	cfgPath := fs.String("config", defaultConfig, "configuration file")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: ok, %d certificate and %d secret bindings", *cfgPath, len(cfg.Certificates), len(cfg.Secrets))
	if m := cfg.ManagedIdentity; m != nil {
		var on []string
		if m.Listen != "" {
			on = append(on, "http://"+m.Listen+midentity.Path)
		}
		if m.Socket != "" {
			on = append(on, m.Socket)
		}
		users := "users"
		if len(m.Identities) == 1 {
			users = "user"
		}
		fmt.Fprintf(out, ", managed identity for %d %s on %s", len(m.Identities), users, strings.Join(on, " and "))
	}
	fmt.Fprintln(out)
	return nil
}

func cmdStatus(args []string, out io.Writer) error {
	fs := flags("status")
	cfgPath := fs.String("config", defaultConfig, "configuration file (for its state_dir)")
	stateDir := fs.String("state-dir", "", "state directory (instead of reading the configuration)")
	output := fs.String("o", "table", "table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usageError{fmt.Errorf("-o %q: use table or json", *output)}
	}
	dir := *stateDir
	if dir == "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		dir = cfg.StateDir
	}
	st, err := runner.LoadState(dir)
	if err != nil {
		return err
	}
	id, idErr := enroll.Load(dir)
	if *output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		v := map[string]any{"state": st}
		if idErr == nil {
			v["agent_id"], v["group"], v["identity_expires"] = id.AgentID, id.Group, id.Expiry().UTC()
		}
		return enc.Encode(v)
	}
	if idErr == nil {
		fmt.Fprintf(out, "agent %s (group %s), identity valid until %s\n", id.AgentID, id.Group, id.Expiry().UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(out, "no identity: %v\n", idErr)
	}
	vault := "reachable"
	if !st.VaultOK {
		vault = "unreachable: " + st.LastVaultError
	}
	fmt.Fprintf(out, "vault %s (state written %s)\n\n", vault, st.Updated.Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tPATH\tVERSION\tSERIAL\tEXPIRES\tLAST CHECK\tRESULT\tLAST ERROR")
	keys := make([]string, 0, len(st.Bindings))
	for k := range st.Bindings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b := st.Bindings[k]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Object, b.Path, dash(b.Version), dash(b.Serial), dashTime(b.Expires), dashTime(b.LastCheck), dash(b.LastResult), dash(b.LastError))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
