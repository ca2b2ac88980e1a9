// Command certvault is the admin CLI of a certvault cluster. It talks to
// any node's HTTPS API; CERTVAULT_ADDR, CERTVAULT_TOKEN and
// CERTVAULT_CACERT say where and as whom.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/internal/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError marks an error in how the command was called (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

// globals are the flags every command takes.
type globals struct {
	addr, token, caCert, output string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "certvault: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		path := root.CommandPath()
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
		return 2
	}
	return 1
}

func newRoot(stdout io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "certvault",
		Short: "Administer a certvault cluster",
		Long: `certvault administers a certvault cluster: its members, snapshots, and
the certificates, keys and secrets it holds.

It talks to any node's HTTPS API. Point it at a vault with:
  CERTVAULT_ADDR    the node's URL (default https://127.0.0.1:8443)
  CERTVAULT_TOKEN   a bearer token (the root token is in DATA/root-token)
  CERTVAULT_CACERT  the vault CA (DATA/ca.pem)
or the matching flags. Output is a table for people; -o json prints JSON.
Exit status: 0 on success, 1 on an error, 2 on a usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Version turns on --version; the template prints the whole line.
		Version: version.Get().Version,
	}
	root.SetVersionTemplate(version.String("certvault") + "\n")
	root.Flags().BoolP("version", "v", false, "print the version, commit and Go version, then exit")
	root.PersistentFlags().StringVar(&g.addr, "addr", "", "vault URL (default $CERTVAULT_ADDR)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "bearer token (default $CERTVAULT_TOKEN)")
	root.PersistentFlags().StringVar(&g.caCert, "ca-cert", "", "PEM file of the vault CA (default $CERTVAULT_CACERT)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.output != "table" && g.output != "json" {
			return usageError{fmt.Errorf("--output %q: use table or json", g.output)}
		}
		// Cobra checks required flags only after this hook, and its
		// error is a plain one (exit 1); check them here as usage errors.
		if err := cmd.ValidateRequiredFlags(); err != nil {
			return usageError{err}
		}
		if err := cmd.ValidateFlagGroups(); err != nil {
			return usageError{err}
		}
		return nil
	}
	root.AddCommand(clusterCmd(g, stdout), certCmd(g, stdout), issuerCmd(g, stdout), contactsCmd(g, stdout), secretCmd(g, stdout), keyCmd(g, stdout), settingsCmd(g, stdout), eventsCmd(g, stdout),
		tokenCmd(g, stdout), spCmd(g, stdout), roleCmd(g, stdout), agentCmd(g, stdout), auditCmd(g, stdout), reportCmd(g, stdout), rolloutCmd(g, stdout))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	builtinExamples(root)
	addExamples(root)
	walk(root, func(c *cobra.Command) {
		if c.Args != nil {
			c.Args = args(c.Args) // cobra's own commands too
		}
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = groupRun
		}
	})
	cobra.AddTemplateFunc("flagUsages", flagUsages)
	root.SetUsageTemplate(strings.NewReplacer(
		".LocalFlags.FlagUsages", "flagUsages .LocalFlags",
		".InheritedFlags.FlagUsages", "flagUsages .InheritedFlags",
		// a group runs only to print its help or refuse an unknown command
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}",
	).Replace(root.UsageTemplate()))
	return root
}

// walk calls f on c and every command below it.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// groupRun runs a command that only groups others: alone it prints its
// help; with an argument that names no subcommand it is a usage error
// (cobra would print the help and exit 0, or exit 1 at the root).
func groupRun(cmd *cobra.Command, a []string) error {
	if len(a) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageError{errors.New(msg)}
}

// noOptBool hides that a flag is boolean from pflag's usage renderer,
// which would print it as --flag[=true|false]; a bool flag shows as
// --flag.
type noOptBool struct{ pflag.Value }

// flagUsages renders fs like FlagSet.FlagUsages, with bool flags as
// --flag.
func flagUsages(fs *pflag.FlagSet) string {
	out := pflag.NewFlagSet("usage", pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		c := *f
		if f.Value.Type() == "bool" {
			c.Value = noOptBool{f.Value}
		}
		out.AddFlag(&c)
	})
	return out.FlagUsages()
}

// builtinExamples gives cobra's own help and completion commands an
// Examples section like every other command.
func builtinExamples(root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  certvault help cert create"
			show := c.Run
			c.Run = nil
			c.RunE = func(cmd *cobra.Command, a []string) error {
				if target, rest, err := root.Find(a); err != nil || len(rest) > 0 {
					return usageError{fmt.Errorf("unknown help topic %q: see 'certvault help'", strings.Join(a, " "))}
				} else if target == nil {
					return usageError{errors.New("unknown help topic: see 'certvault help'")}
				}
				show(cmd, a)
				return nil
			}
		case "completion":
			for _, sh := range c.Commands() {
				switch sh.Name() {
				case "bash":
					sh.Example = "  source <(certvault completion bash)"
				case "zsh":
					sh.Example = "  certvault completion zsh > \"${fpath[1]}/_certvault\""
				case "fish":
					sh.Example = "  certvault completion fish > ~/.config/fish/completions/certvault.fish"
				case "powershell":
					sh.Example = "  certvault completion powershell | Out-String | Invoke-Expression"
				}
			}
		}
	}
}

// client builds the API client from the flags and environment.
func (g *globals) client() (*client.Client, error) {
	return client.New(client.Config{Addr: g.addr, Token: g.token, CACert: g.caCert})
}

// args wraps a cobra argument validator so that its failure is a usage
// error.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table returns a tab writer for aligned columns; call Flush.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
