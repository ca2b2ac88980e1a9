package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/certvault/certvault/internal/atomicfile"
	"github.com/certvault/certvault/internal/report"
	"github.com/spf13/cobra"
)

// addrOrEnv is the vault URL the CLI talks to, for hints it prints.
func (g *globals) addrOrEnv() string {
	if cl, err := g.client(); err == nil {
		return cl.Addr()
	}
	return "https://VAULT:8443"
}

func auditCmd(g *globals, out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "The audit trail: every request, allowed or denied",
		Long: `Every request a node answers (health probes and metrics aside) is appended
to that node's audit trail: time, principal, source address, operation,
object, version, status, outcome and request id, never a secret value. Records
are hash-chained, and each node anchors its latest hash in raft every few
seconds, so a record changed, removed or reordered is found by 'audit verify'.
A mutating or secret-reading request is answered only once its record is on
disk. The trail of each node is DATA/audit/audit.jsonl (one JSON per line).`,
	}
	var since, until, principal, object, outcome string
	var limit int
	list := &cobra.Command{
		Use:   "list [--since T] [--principal P] [--object O]",
		Short: "List audit records from every node, oldest first",
		Example: `  certvault audit list --since 24h --object /secrets/db
  certvault audit list --principal app-team --outcome denied -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"since": since, "until": until, "principal": principal, "object": object, "outcome": outcome} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", fmt.Sprint(limit))
			return g.show(cmd, out, http.MethodGet, "/v1/audit/records?"+q.Encode(), nil, func(raw json.RawMessage) error {
				var res struct {
					Value []struct {
						Time                                                time.Time
						Node, Principal, Source, Operation, Object, Version string
						Outcome                                             string
						Status                                              int
						RequestID                                           string `json:"request_id"`
						Lost                                                uint64
					}
					Unreachable []string
				}
				json.Unmarshal(raw, &res)
				tw := table(out)
				fmt.Fprintln(tw, "TIME\tNODE\tPRINCIPAL\tSOURCE\tOPERATION\tOBJECT\tVERSION\tSTATUS\tOUTCOME\tREQUEST")
				for _, r := range res.Value {
					p := r.Principal
					if p == "" {
						p = "-"
					}
					if r.Outcome == "gap" {
						// The trail could not be written: how many are missing.
						r.Object = fmt.Sprintf("%d requests without a record", r.Lost)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Time.UTC().Format("2006-01-02 15:04:05.000Z"), r.Node, p, r.Source,
						r.Operation, dash(r.Object), dash(r.Version), r.Status, r.Outcome, r.RequestID)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(res.Unreachable) > 0 {
					return fmt.Errorf("nodes %v could not be reached: their records are missing above", res.Unreachable)
				}
				return nil
			})
		},
	}
	list.Flags().StringVar(&since, "since", "", "from this time: RFC 3339 or an age such as 90m, 24h, 7d")
	list.Flags().StringVar(&until, "until", "", "before this time (same forms)")
	list.Flags().StringVar(&principal, "principal", "", "only this principal (agent:ID for an agent)")
	list.Flags().StringVar(&object, "object", "", "only this object (/secrets/db), or everything under a path ending in / (/secrets/)")
	list.Flags().StringVar(&outcome, "outcome", "", "only allowed, denied, unauthenticated, error or gap (where the trail could not be written, e.g. a full disk)")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many records (the newest)")
	c.AddCommand(list)

	c.AddCommand(&cobra.Command{
		Use:   "verify",
		Short: "Check every node's trail: chain, order and raft anchors",
		Long: `verify asks every node to check its trail: each record parses, sequence
numbers follow each other, each record chains to the one before, its hash
matches its content, and the trail still holds the heads anchored in raft
(which catches a trail rewritten from some point or cut short). It names the
first bad record and exits 1 when any node's trail fails or cannot be reached.
A gap record (written when a node could write its trail again after a full
disk) keeps the chain whole; verify counts the requests it says have no
record.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := g.call(cmd, http.MethodPost, "/v1/audit/verify", nil)
			if err != nil {
				return err
			}
			var res struct {
				OK    bool
				Nodes []struct {
					Node    string
					OK      bool
					Records uint64
					Start   uint64
					Anchors int
					Gaps    int
					Lost    uint64
					Error   string
					Problem *struct {
						File   string
						Line   int
						Seq    uint64
						Reason string
					}
					Incidents []struct {
						Time    time.Time
						Problem struct {
							Seq    uint64
							Reason string
						}
					}
				}
			}
			json.Unmarshal(raw, &res)
			if g.output == "json" {
				if err := printJSON(out, raw); err != nil {
					return err
				}
			} else {
				for _, nd := range res.Nodes {
					switch {
					case nd.Error != "":
						fmt.Fprintf(out, "%s: NOT VERIFIED: %s\n", nd.Node, nd.Error)
					case nd.OK && nd.Start > 1:
						fmt.Fprintf(out, "%s: ok, %d records from record %d (older segments removed), %d raft anchors matched\n", nd.Node, nd.Records, nd.Start, nd.Anchors)
					case nd.OK:
						fmt.Fprintf(out, "%s: ok, %d records, %d raft anchors matched\n", nd.Node, nd.Records, nd.Anchors)
					default:
						fmt.Fprintf(out, "%s: TAMPERED: first bad record %d (%s line %d): %s\n", nd.Node, nd.Problem.Seq, nd.Problem.File, nd.Problem.Line, nd.Problem.Reason)
					}
					if nd.Gaps > 0 {
						fmt.Fprintf(out, "%s: %d gap(s) while the trail could not be written: %d requests have no record ('certvault audit list --outcome gap' says when and why)\n", nd.Node, nd.Gaps, nd.Lost)
					}
					for _, inc := range nd.Incidents {
						fmt.Fprintf(out, "%s: INCIDENT at start-up %s: record %d: %s\n", nd.Node, fmtTime(&inc.Time), inc.Problem.Seq, inc.Problem.Reason)
					}
				}
			}
			if !res.OK {
				return errors.New("the audit trail did not verify")
			}
			return nil
		},
	})
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func reportCmd(g *globals, out io.Writer) *cobra.Command {
	var format, since, until, file string
	c := &cobra.Command{
		Use:   "report --format html|json|csv [--since T] [--until T] [--out FILE]",
		Short: "The evidence report for auditors: rotation, deliveries, access",
		Long: `report builds the evidence report an auditor asks for:
  (a) rotation history: every certificate's versions, their dates, and who
      or which renewal made each;
  (b) where each certificate went: the agents and the version each
      installed, when, with what result;
  (c) who has access to each object (resolved from the role assignments)
      and who actually read each secret (from the audit trails).
The HTML is one self-contained file (tables and an expiry timeline chart)
that opens in any browser offline. Needs Reader (or Administrator) at /.`,
		Example: `  certvault report --format html --out evidence.html
  certvault report --format csv --since 90d > evidence.csv`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "html" && format != "json" && format != "csv" {
				return usageError{fmt.Errorf("--format %q: use html, json or csv", format)}
			}
			path := "/v1/report"
			q := url.Values{}
			for k, v := range map[string]string{"since": since, "until": until} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			raw, err := g.call(cmd, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			var rep report.Report
			if err := json.Unmarshal(raw, &rep); err != nil {
				return fmt.Errorf("decode report: %w", err)
			}
			render := func(w io.Writer) error {
				switch format {
				case "html":
					return report.WriteHTML(w, &rep)
				case "csv":
					return report.WriteCSV(w, &rep)
				}
				return printJSON(w, &rep)
			}
			if file == "" || file == "-" {
				return render(out)
			}
			var buf bytes.Buffer
			if err := render(&buf); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s\n", file)
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "html", "html, json or csv")
	c.Flags().StringVar(&since, "since", "", "only history from this time: RFC 3339 or an age such as 90d")
	c.Flags().StringVar(&until, "until", "", "only history before this time: RFC 3339 or an age such as 30d")
	c.Flags().StringVar(&file, "out", "", "write to this file instead of standard output")
	return c
}
