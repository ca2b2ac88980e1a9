package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/certvault/certvault/internal/client"
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
	snap.AddCommand(&cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole vault state with a snapshot",
		Long: `Replace the whole replicated state with the snapshot in FILE. The file is
verified first (format, checksum, seal key, CA); a bad file is refused and
nothing changes.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			f, err := os.Open(a[0])
			if err != nil {
				return err
			}
			defer f.Close()
			resp, err := cl.Raw(cmd.Context(), http.MethodPut, "/v1/sys/cluster/snapshot", f, http.Header{"Content-Type": {"application/octet-stream"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return client.ParseError(resp.StatusCode, body)
			}
			fmt.Fprintf(out, "restored %s\n", a[0])
			return nil
		},
	})
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
