package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// clusterStatus mirrors the server's status answer.
type clusterStatus struct {
	Leader       string `json:"leader"`
	NodeID       string `json:"node_id"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	DiskFull     string `json:"disk_full"`
	Servers      []struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		APIAddr  string `json:"api_addr"`
		Suffrage string `json:"suffrage"`
		State    string `json:"state"`
	} `json:"servers"`
}

func clusterCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Members, join tokens and snapshots of the raft cluster",
	}
	c.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the members, the leader and the applied index",
		Example: `  certvault cluster status
  certvault cluster status -o json | jq .leader`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var st clusterStatus
			var raw map[string]any
			if err := cl.Do(cmd.Context(), http.MethodGet, "/v1/sys/cluster/status", nil, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, raw)
			}
			if err := remarshal(raw, &st); err != nil {
				return err
			}
			fmt.Fprintf(out, "leader: %s   term: %d   applied index: %d (answered by %s)\n", orNone(st.Leader), st.Term, st.AppliedIndex, st.NodeID)
			if st.DiskFull != "" {
				fmt.Fprintf(out, "DISK FULL: %s\n", st.DiskFull)
			}
			fmt.Fprintln(out)
			tw := table(out)
			fmt.Fprintln(tw, "ID\tSTATE\tSUFFRAGE\tRAFT ADDRESS\tAPI")
			for _, s := range st.Servers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, s.Suffrage, s.Address, s.APIAddr)
			}
			return tw.Flush()
		},
	})

	var ttl string
	var uses int
	jt := &cobra.Command{
		Use:   "join-token",
		Short: "Print a token that lets a new node join the cluster",
		Long: `Print a join token. A new node starts with it:

  certvaultd --join https://ANY-NODE:8443 --join-token TOKEN \
    --seal-key-file COPY-OF-THE-CLUSTER-SEAL-KEY --node-id ID ...

The token pins the cluster CA (the new node checks it before trusting the
cluster), expires after --ttl and allows --uses joins.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var resp map[string]any
			if err := cl.Do(cmd.Context(), http.MethodPost, "/v1/sys/cluster/join-tokens", map[string]any{"ttl": ttl, "uses": uses}, &resp); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, resp)
			}
			fmt.Fprintln(out, resp["token"])
			fmt.Fprintf(os.Stderr, "expires %v, %v use(s); CA fingerprint %v\n", resp["expires"], resp["uses"], resp["ca_fingerprint"])
			return nil
		},
	}
	jt.Flags().StringVar(&ttl, "ttl", "1h", "how long the token is valid")
	jt.Flags().IntVar(&uses, "uses", 1, "how many nodes may join with it")
	c.AddCommand(jt)

	c.AddCommand(&cobra.Command{
		Use:     "remove ID",
		Short:   "Remove a node from the cluster",
		Example: "  certvault cluster remove vault3",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var resp map[string]any
			if err := cl.Do(cmd.Context(), http.MethodDelete, "/v1/sys/cluster/members/"+a[0], nil, &resp); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(out, resp)
			}
			fmt.Fprintf(out, "removed %s\n", a[0])
			return nil
		},
	})

	snap := &cobra.Command{Use: "snapshot", Short: "Save or restore a snapshot of the whole vault state"}
	snap.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the vault to FILE",
		Long: `Save a consistent snapshot of the whole replicated state to FILE. Secrets
in it stay encrypted under the cluster's keyring: it restores only into a
cluster with the same seal key and CA. FILE appears only once complete.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			resp, err := cl.Raw(cmd.Context(), http.MethodGet, "/v1/sys/cluster/snapshot", nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(resp.Body)
				return client.ParseError(resp.StatusCode, body)
			}
			n, err := writeFileFrom(a[0], resp.Body)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "saved %d bytes to %s\n", n, a[0])
			return nil
		},
	})
	snap.AddCommand(snapshotRestoreCmd(g, out))
	c.AddCommand(snap)
	return c
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// writeFileFrom copies r into path through a temporary file, so that a
// failed transfer leaves no partial file.
func writeFileFrom(path string, r io.Reader) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), path)
}

// isTerminal says whether the CLI's standard input is a terminal, where a
// person can answer a question.
var isTerminal = func() bool {
	fd := os.Stdin.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

func snapshotRestoreCmd(g *globals, out io.Writer) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole vault state with a snapshot",
		Long: `Replace the whole replicated state with the snapshot in FILE, on every node:
what the vault holds now and is not in the snapshot is lost. The file is
verified first (format, checksum, seal key, CA); a bad file is refused and
nothing changes.

On a terminal the command asks for confirmation; elsewhere (scripts, CI)
pass --yes, or it refuses with exit 2. Once restored it prints what the
snapshot held: its index, when it was taken and how many objects.`,
		Example: `  certvault cluster snapshot restore vault-2026-11-26.snap
  certvault cluster snapshot restore vault-2026-11-26.snap --yes   # no question (scripts)`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			f, err := os.Open(a[0])
			if err != nil {
				return err
			}
			defer f.Close()
			cl, err := g.client()
			if err != nil {
				return err
			}
			if !yes {
				if !isTerminal() {
					return usageError{errors.New("restoring replaces the whole vault state and no terminal is here to confirm it: pass --yes")}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Replace the whole state of the vault at %s with %s? What it holds now is lost. Type yes to restore: ", cl.Addr(), a[0])
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read confirmation: %w", err)
				}
				if ans := strings.ToLower(strings.TrimSpace(line)); ans != "yes" && ans != "y" {
					return errors.New("not restored: the answer was not yes")
				}
			}
			resp, err := cl.Raw(cmd.Context(), http.MethodPut, "/v1/sys/cluster/snapshot", f, http.Header{"Content-Type": {"application/octet-stream"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return fmt.Errorf("read answer: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return client.ParseError(resp.StatusCode, body)
			}
			if g.output == "json" {
				return printJSON(out, json.RawMessage(body))
			}
			var res struct {
				SnapshotIndex uint64     `json:"snapshot_index"`
				SnapshotTime  *time.Time `json:"snapshot_time"`
				Objects       struct {
					Certificates, Secrets, Keys, Deleted, Issuers, Agents int
				} `json:"objects"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			taken := "at an unrecorded time (an older snapshot format)"
			if res.SnapshotTime != nil {
				taken = "taken " + res.SnapshotTime.UTC().Format(time.RFC3339)
			}
			o := res.Objects
			fmt.Fprintf(out, "restored %s: snapshot index %d, %s\n", a[0], res.SnapshotIndex, taken)
			fmt.Fprintf(out, "  %s, %s, %s, %s (recoverable), %s, %s\n",
				plural(o.Certificates, "certificate"), plural(o.Secrets, "secret"), plural(o.Keys, "key"),
				plural(o.Deleted, "deleted object"), plural(o.Issuers, "issuer"), plural(o.Agents, "agent"))
			return nil
		},
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "restore without asking (needed when standard input is not a terminal)")
	return c
}

// plural returns "1 thing" or "N things".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
