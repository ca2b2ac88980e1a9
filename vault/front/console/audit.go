package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/audit"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
)

// The audit trail page: the records of every node's trail (the query the
// API's GET /v1/audit/records makes, through Env.QueryAudit), filtered by
// time, principal, object (exact, or a prefix ending in "/") and outcome,
// newest first, a page at a time. It needs audit/read at the vault scope,
// as the API does. A record holds no secret (no value, no token secret),
// so the page shows every field but the hash chain.

// Audit page bounds: rows by default and at most, and how many records
// sharing the previous page's last instant a page may skip over.
const (
	auditRows    = 100
	auditMaxRows = 1000
	auditTies    = 16
)

// auditOutcomes are the outcomes a record may have, for the filter.
var auditOutcomes = []string{"allowed", "denied", "unauthenticated", "error", audit.OutcomeGap}

// auditRow is one record as the page shows it.
type auditRow struct {
	Time, TimeISO                      string
	Node, Principal, TokenID, Source   string
	Operation, Action, Object, Version string
	Status                             int
	Outcome, RequestID, Detail         string
	PrincipalFilter, ObjectFilter      string
}

// auditPage is the audit page's data.
type auditPage struct {
	page
	Since, Until, Principal, Object, Outcome string
	Limit                                    int
	Outcomes                                 []string
	Rows                                     []auditRow
	Unreachable                              []string
	// Older is the link to the page of older records ("" when none).
	Older string
}

// auditCursor is where a page of older records starts: before the
// record with this time, node and sequence (the merge order of the
// trails).
type auditCursor struct {
	time time.Time
	node string
	seq  uint64
}

func (c auditCursor) String() string {
	return c.time.UTC().Format(time.RFC3339Nano) + "," + strconv.FormatUint(c.seq, 10) + "," + c.node
}

func parseCursor(s string) (auditCursor, bool) {
	ts, rest, ok1 := strings.Cut(s, ",")
	seq, node, ok2 := strings.Cut(rest, ",")
	t, err1 := time.Parse(time.RFC3339Nano, ts)
	n, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return auditCursor{}, false
	}
	return auditCursor{time: t, node: node, seq: n}, true
}

// before reports whether rec comes before the cursor in merge order.
func (c auditCursor) before(rec audit.Record) bool {
	if d := rec.Time.Compare(c.time); d != 0 {
		return d < 0
	}
	if d := strings.Compare(rec.Node, c.node); d != 0 {
		return d < 0
	}
	return rec.Seq < c.seq
}

// parseWhen reads a time the way the API does (RFC 3339, or an age such
// as 24h or 7d, meaning that long ago), or as a browser's date and time
// field sends it (2026-11-27T10:00, 2026-11-27), taken as UTC.
func parseWhen(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := front.ParseSince(v, now); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: not RFC 3339, a date and time, or an age", v)
}

// handleAudit shows the audit trail, newest first.
func (f *Front) handleAudit(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	if !f.permit(w, r, s.caller, access.Resource{}, access.AuditRead) {
		return
	}
	q := r.URL.Query()
	data := auditPage{page: f.pageFor(s, "Audit trail", "audit"),
		Since: q.Get("since"), Until: q.Get("until"), Principal: strings.TrimSpace(q.Get("principal")),
		Object: strings.TrimSpace(q.Get("object")), Outcome: q.Get("outcome"), Limit: auditRows, Outcomes: auditOutcomes}
	now := time.Now()
	flt := audit.Filter{Principal: data.Principal, Object: data.Object, Outcome: data.Outcome}
	for _, b := range []struct {
		name, v string
		t       *time.Time
	}{{"From", data.Since, &flt.Since}, {"To", data.Until, &flt.Until}} {
		if b.v == "" {
			continue
		}
		t, err := parseWhen(b.v, now)
		if err != nil {
			f.renderError(w, r, http.StatusBadRequest, "Bad filter",
				b.name+": give a UTC date and time (2026-11-27T10:00), an RFC 3339 time, or an age such as 90m, 24h or 7d.")
			return
		}
		*b.t = t
	}
	if data.Outcome != "" && !slices.Contains(auditOutcomes, data.Outcome) {
		f.renderError(w, r, http.StatusBadRequest, "Bad filter", "Outcome: choose one of "+strings.Join(auditOutcomes, ", ")+".")
		return
	}
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > auditMaxRows {
			f.renderError(w, r, http.StatusBadRequest, "Bad filter", fmt.Sprintf("Rows: give a number from 1 to %d.", auditMaxRows))
			return
		}
		data.Limit = l
	}
	var cur *auditCursor
	if v := q.Get("before"); v != "" {
		c, ok := parseCursor(v)
		if !ok {
			f.renderError(w, r, http.StatusBadRequest, "Bad filter", "This link to older records is damaged; start again from the newest.")
			return
		}
		cur = &c
		flt.Until = c.time.Add(time.Nanosecond) // records of the same instant are told apart below
	}
	want := data.Limit + 1 + auditTies
	res, err := f.QueryAudit(r.Context(), s.caller, core.AuditQuery{Filter: flt, Limit: want})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	data.Unreachable = res.Unreachable
	recs := res.Value // oldest first
	if cur != nil {
		recs = slices.DeleteFunc(recs, func(rec audit.Record) bool { return !cur.before(rec) })
	}
	more := len(res.Value) == want || len(recs) > data.Limit
	if len(recs) > data.Limit {
		recs = recs[len(recs)-data.Limit:]
	}
	for i := len(recs) - 1; i >= 0; i-- {
		data.Rows = append(data.Rows, viewRecord(recs[i]))
	}
	if more && len(recs) > 0 {
		v := url.Values{}
		for k, vs := range q {
			if k != "before" {
				v[k] = vs
			}
		}
		v.Set("before", auditCursor{time: recs[0].Time, node: recs[0].Node, seq: recs[0].Seq}.String())
		data.Older = "/ui/audit?" + v.Encode()
	}
	f.render(w, http.StatusOK, "audit", data)
}

// viewRecord is how the page shows a record, with links that filter by
// its principal and object.
func viewRecord(rec audit.Record) auditRow {
	row := auditRow{Time: rec.Time.UTC().Format("2006-01-02 15:04:05.000"), TimeISO: rec.Time.UTC().Format(time.RFC3339Nano),
		Node: rec.Node, Principal: rec.Principal, TokenID: rec.TokenID, Source: rec.Source,
		Operation: rec.Operation, Action: rec.Action, Object: rec.Object, Version: rec.Version,
		Status: rec.Status, Outcome: rec.Outcome, RequestID: rec.RequestID, Detail: rec.Detail}
	if row.Operation == "" {
		row.Operation = rec.Method
	}
	if rec.Outcome == audit.OutcomeGap {
		row.Detail = fmt.Sprintf("%d requests have no record: %s", rec.Lost, rec.Detail)
	}
	if rec.Principal != "" {
		row.PrincipalFilter = "/ui/audit?" + url.Values{"principal": {rec.Principal}}.Encode()
	}
	if rec.Object != "" {
		row.ObjectFilter = "/ui/audit?" + url.Values{"object": {rec.Object}}.Encode()
	}
	return row
}
