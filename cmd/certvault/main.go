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
	"syscall"
	"text/tabwriter"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/internal/version"
	"github.com/spf13/cobra"
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
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "certvault: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'certvault --help' for usage.")
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
		return nil
	}
	root.AddCommand(clusterCmd(g, stdout), certCmd(g, stdout), issuerCmd(g, stdout), contactsCmd(g, stdout), secretCmd(g, stdout), keyCmd(g, stdout), settingsCmd(g, stdout), eventsCmd(g, stdout),
		tokenCmd(g, stdout), roleCmd(g, stdout), agentCmd(g, stdout), auditCmd(g, stdout), reportCmd(g, stdout), rolloutCmd(g, stdout))
	return root
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
