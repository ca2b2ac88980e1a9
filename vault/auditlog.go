package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/leaderpass"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/audit"
)

// Audit trail wiring. Each node appends the requests it answers to its own
// hash-chained file (vault/audit); every few seconds it anchors its head
// (sequence and hash) in raft, so that the other nodes hold a replicated
// witness of each trail. See DESIGN.md, "Audit trail".

// prefixAuditAnchors holds each node's recent anchors.
const prefixAuditAnchors = "audit/anchors/"

// prefixAuditIncidents holds what a node found wrong with its own trail
// at start-up: the evidence outlives the anchors it was found with.
const prefixAuditIncidents = "audit/incidents/"

// auditIncident is a failed start-up check of a node's trail.
type auditIncident struct {
	Node    string         `json:"node"`
	Time    time.Time      `json:"time"`
	Problem *audit.Problem `json:"problem"`
	Records uint64         `json:"records"`
}

// anchorInterval is how often a node anchors its audit head in raft.
const anchorInterval = 5 * time.Second

// anchorsKept is how many anchors per node raft keeps.
const anchorsKept = 64

// anchorRecord is one node's recent audit heads, oldest first.
type anchorRecord struct {
	Node    string       `json:"node"`
	Anchors []anchorHead `json:"anchors"`
}

type anchorHead struct {
	audit.Head
	Time time.Time `json:"time"`
}

// openAudit opens this node's trail and starts anchoring it.
func (n *Node) openAudit() error {
	seg := int64(audit.DefaultSegmentBytes)
	if n.opts.AuditSegmentMB > 0 {
		seg = int64(n.opts.AuditSegmentMB) << 20
	}
	l, err := audit.OpenWith(n.path("audit"), audit.Options{SegmentBytes: seg, OnChange: n.auditChanged,
		// Raft's reserve is not for the trail: below it the node takes
		// neither writes nor secret reads.
		Room: n.Store.DiskFull})
	if err != nil {
		return err
	}
	n.auditLog = l
	n.Fleet.SetSystemAudit(l, n.opts.NodeID)
	ctx, cancel := context.WithCancel(context.Background())
	n.stopAudit = cancel
	n.auditDone = make(chan struct{})
	go n.anchorAudit(ctx)
	go n.checkAuditAtStart(ctx)
	go n.checkNames(ctx) // also a check once caught up; see names.go
	return nil
}

// checkAuditAtStart verifies this node's trail against its raft anchors
// once the node has caught up with the cluster. A trail that fails (cut
// short or rewritten while the node was down) is logged and recorded as
// an incident in raft, which 'audit verify' reports from then on, even
// after the anchors that showed it have rolled over.
func (n *Node) checkAuditAtStart(ctx context.Context) {
	if !n.awaitCaughtUp(ctx, time.Time{}) {
		return
	}
	// Against the anchors, from the oldest one: reading the whole trail
	// (years of segments) at every start would buy nothing more.
	heads := n.anchorHeads()
	if len(heads) == 0 {
		return
	}
	res, err := audit.VerifyTrailFrom(n.auditLog.Dir(), heads[0].Seq, heads...)
	if err != nil || res.OK || res.Problem == nil {
		return
	}
	v := NodeVerification{Node: n.opts.NodeID, Result: res}
	n.Log.Error("this node's audit trail fails verification; recorded as an incident", "problem", v.Problem.Reason, "line", v.Problem.Line)
	inc := auditIncident{Node: n.opts.NodeID, Time: time.Now().UTC(), Problem: v.Problem, Records: v.Records}
	key := fmt.Sprintf("%s%s/%d", prefixAuditIncidents, n.opts.NodeID, inc.Time.UnixNano())
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.Store.Apply(actx, (&raftstore.Batch{}).Put(key, core.MustJSON(inc)))
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// closeAudit stops anchoring and closes the trail.
func (n *Node) closeAudit() error {
	if n.auditLog == nil {
		return nil
	}
	n.stopAudit()
	<-n.auditDone
	return n.auditLog.Close()
}

// anchorAudit writes the trail's head to raft when it moved.
func (n *Node) anchorAudit(ctx context.Context) {
	defer close(n.auditDone)
	t := time.NewTicker(anchorInterval)
	defer t.Stop()
	var last audit.Head
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Only what is on disk: a record after it may yet be lost to a
		// failing disk and its number given to another.
		head := n.auditLog.DurableHead()
		if head == last || head.Seq == 0 {
			continue
		}
		if err := n.putAnchor(ctx, head); err != nil {
			if !errors.Is(err, context.Canceled) {
				n.Log.Debug("anchor audit head", "err", err)
			}
			continue
		}
		last = head
	}
}

func (n *Node) putAnchor(ctx context.Context, head audit.Head) error {
	key := prefixAuditAnchors + n.opts.NodeID
	rec := anchorRecord{Node: n.opts.NodeID}
	idx := raftstore.NotExist
	if e, ok := n.Store.Get(key); ok {
		json.Unmarshal(e.Value, &rec)
		idx = e.Index
	}
	rec.Anchors = append(rec.Anchors, anchorHead{Head: head, Time: time.Now().UTC()})
	if len(rec.Anchors) > anchorsKept {
		rec.Anchors = rec.Anchors[len(rec.Anchors)-anchorsKept:]
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := n.Store.Apply(actx, (&raftstore.Batch{}).PutIf(key, core.MustJSON(rec), idx))
	return err
}

// unaudited reports whether a request is left out of the trail: health
// probes, metrics, raft forwarding, a node's share of a fan-out query,
// and a request a follower passed on (the follower records it).
func (n *Node) unaudited(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics", raftstore.ForwardPath:
		return true
	}
	if strings.HasPrefix(r.URL.Path, "/v1/sys/audit/local/") {
		return true
	}
	return r.Header.Get(leaderpass.Header) != "" && n.isNodeRequest(r)
}

// record appends the request's audit record. A held answer is sent only
// once the record is on disk; if it cannot be made durable the caller
// gets 503 instead.
func (n *Node) record(aw *auditWriter, r *http.Request, info *front.ReqInfo, route, reqID string, start time.Time) {
	if n.auditLog == nil {
		if info.Hold {
			aw.release()
		}
		return
	}
	code := aw.code
	if code == 0 {
		code = http.StatusOK
	}
	outcome := "allowed"
	switch {
	case code == http.StatusUnauthorized:
		outcome = "unauthenticated"
	case code == http.StatusForbidden || info.Denied:
		outcome = "denied"
	case code >= 400:
		outcome = "error"
	}
	op := info.Operation
	if op == "" {
		op = route
	}
	rec := audit.Record{
		Time: start.UTC(), Node: n.opts.NodeID, RequestID: reqID,
		Principal: info.Caller.Name, TokenID: info.Caller.TokenID, Source: front.InfoSource(r),
		Method: r.Method, Operation: op, Action: string(info.Action),
		Object: info.Object, Version: info.Version, Status: code, Outcome: outcome,
	}
	if !info.Hold {
		// While the trail cannot be written the log counts the records
		// it refuses and writes that count into the trail once it can.
		n.auditLog.Append(rec)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.auditLog.AppendSync(ctx, rec); err != nil {
		if code >= 400 {
			// A refusal or a failure hands nothing out, and its own
			// message says whether anything changed: pass it on.
			aw.release()
			return
		}
		ae := n.withheld(r, code, err)
		aw.code = ae.Status
		aw.buf.Reset()
		// Headers of the withheld answer (a proxied one brings its
		// Content-Length) must not describe the error.
		aw.ResponseWriter.Header().Del("Location")
		aw.ResponseWriter.Header().Del("Content-Length")
		aw.info.Hold = false
		front.WriteError(aw.ResponseWriter, ae)
		return
	}
	aw.release()
}

// isDiskFull reports whether err is a lack of disk space (or quota).
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, raftstore.ErrDiskFull)
}

// auditRefusal answers a write or a secret read that came while the
// trail cannot be written: it is refused before anything is done.
func (n *Node) auditRefusal(err error) *front.APIError {
	if isDiskFull(err) {
		return &front.APIError{Status: http.StatusInsufficientStorage, Code: "InsufficientStorage", Cause: err,
			Message: fmt.Sprintf("the disk of node %s is full: its audit trail in %s cannot be written, so it refuses writes and secret reads; nothing was done. "+
				"Send the request to another node, or retry once space is freed there: the node takes them again by itself", n.opts.NodeID, n.path("audit"))}
	}
	return &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Cause: err,
		Message: fmt.Sprintf("the audit trail of node %s cannot be written (its log says why), so it refuses writes and secret reads; nothing was done", n.opts.NodeID)}
}

// withheld answers a request that succeeded but whose record could not
// be made durable: the answer is not sent. What it says about the request
// is what is known: a read changed nothing, a write was carried out.
func (n *Node) withheld(r *http.Request, code int, err error) *front.APIError {
	ae := &front.APIError{Status: http.StatusServiceUnavailable, Code: "AuditUnavailable", Cause: err}
	why := "could not be made durable"
	if isDiskFull(err) {
		ae.Status = http.StatusInsufficientStorage
		why = fmt.Sprintf("could not be written: the disk of node %s is full (%s)", n.opts.NodeID, n.path("audit"))
	}
	if front.IsWrite(r.Method) {
		ae.Message = fmt.Sprintf("the request was carried out (%d) but its audit record %s, so its answer is withheld: read the object before retrying", code, why)
	} else {
		ae.Message = fmt.Sprintf("the read's audit record %s, so its answer is withheld; a read changes nothing: retry later or on another node", why)
	}
	return ae
}

// auditChanged logs the trail breaking and healing (audit.Options.OnChange).
func (n *Node) auditChanged(err error) {
	if err != nil {
		n.Log.Error("audit trail cannot be written; this node refuses writes and secret reads until it can (it retries by itself)", "err", err)
		return
	}
	n.Log.Warn("audit trail can be written again; the requests it missed are counted in a gap record ('certvault audit list --outcome gap')")
}

// auditRoutes registers the audit trail's endpoints.
func (n *Node) auditRoutes(vault func(string, string, http.HandlerFunc, ...access.Action), node func(string, string, http.HandlerFunc)) {
	vault("GET", "/v1/audit/records", n.handleAuditRecords, access.AuditRead)
	vault("POST", "/v1/audit/verify", n.handleAuditVerify, access.AuditRead)
	node("GET", "/v1/sys/audit/local/records", n.nodeOnly(n.handleLocalRecords))
	node("POST", "/v1/sys/audit/local/verify", n.nodeOnly(n.handleLocalVerify))
}

// nodeOnly refuses callers that are not cluster nodes.
func (n *Node) nodeOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.isNodeRequest(r) {
			front.WriteError(w, &front.APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "only cluster nodes may call this"})
			return
		}
		h(w, r)
	}
}

// parseAuditQuery reads the query of a records request.
func parseAuditQuery(q url.Values) (core.AuditQuery, error) {
	aq := core.AuditQuery{Limit: 1000}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"since", &aq.Filter.Since}, {"until", &aq.Filter.Until}} {
		if v := q.Get(f.name); v != "" {
			t, err := front.ParseSince(v, time.Now())
			if err != nil {
				return aq, front.BadParameter("%s %q: give an RFC 3339 time (2026-11-27T10:00:00Z) or an age (90m, 24h, 7d)", f.name, v)
			}
			*f.t = t
		}
	}
	aq.Filter.Principal = q.Get("principal")
	aq.Filter.Object = q.Get("object")
	aq.Filter.Outcome = q.Get("outcome")
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l <= 0 || l > 100000 {
			return aq, front.BadParameter("limit %q: give a number from 1 to 100000", v)
		}
		aq.Limit = l
	}
	return aq, nil
}

func (n *Node) handleLocalRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		n.fail(w, r, err)
		return
	}
	recs, err := n.localRecords(q)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, core.AuditRecords{Value: recs})
}

// members returns the IDs of the cluster's nodes.
func (n *Node) members() []string {
	es, _ := n.Store.List(prefixNodes, "", 0)
	ids := make([]string, 0, len(es))
	for _, e := range es {
		ids = append(ids, strings.TrimPrefix(e.Key, prefixNodes))
	}
	return ids
}

// fanOut calls path on every node (this one through local) and collects
// each answer; nodes that fail are reported by ID.
func fanOut[T any](n *Node, ctx context.Context, method, path string, local func() (T, error)) (map[string]T, []string) {
	ids := n.members()
	var mu sync.Mutex
	out := map[string]T{}
	var failed []string
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v T
			var err error
			if id == n.opts.NodeID {
				v, err = local()
			} else {
				err = n.callNode(ctx, id, method, path, &v)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				n.Log.Warn("audit fan-out", "node", id, "err", err)
				failed = append(failed, id)
				return
			}
			out[id] = v
		}()
	}
	wg.Wait()
	slices.Sort(failed)
	return out, failed
}

// callNode calls another node's API with this node's certificate.
func (n *Node) callNode(ctx context.Context, id, method, path string, out any) error {
	base, err := n.resolveNode(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return fmt.Errorf("call node %s: %w", id, err)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("call node %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("call node %s: %s", id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("call node %s: decode: %w", id, err)
	}
	return nil
}

func (n *Node) handleLocalVerify(w http.ResponseWriter, r *http.Request) {
	v, err := n.localVerify()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, v)
}

func (n *Node) handleAuditRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditQuery(r.URL.Query())
	if err != nil {
		n.fail(w, r, err)
		return
	}
	res, err := n.QueryAudit(r.Context(), front.CallerOf(r), q)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, res)
}

func (n *Node) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	// Verification reads anchors from the local state; make it current.
	if !n.linearized(w, r) {
		return
	}
	res, err := n.VerifyAudit(r.Context(), front.CallerOf(r))
	if err != nil {
		n.fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, res)
}

// auditRecordsByNode asks every node (this one locally) for its records
// matching q; nodes that fail are reported by ID.
func (n *Node) auditRecordsByNode(ctx context.Context, q core.AuditQuery) (map[string]core.AuditRecords, []string) {
	vals := url.Values{}
	if !q.Filter.Since.IsZero() {
		vals.Set("since", q.Filter.Since.Format(time.RFC3339Nano))
	}
	if !q.Filter.Until.IsZero() {
		vals.Set("until", q.Filter.Until.Format(time.RFC3339Nano))
	}
	for k, v := range map[string]string{"principal": q.Filter.Principal, "object": q.Filter.Object, "outcome": q.Filter.Outcome} {
		if v != "" {
			vals.Set(k, v)
		}
	}
	vals.Set("limit", strconv.Itoa(q.Limit))
	return fanOut(n, ctx, http.MethodGet, "/v1/sys/audit/local/records?"+vals.Encode(), func() (core.AuditRecords, error) {
		recs, err := n.localRecords(q)
		return core.AuditRecords{Value: recs}, err
	})
}

// auditVerifyByNode has every node (this one locally) verify its trail;
// nodes that fail are reported by ID.
func (n *Node) auditVerifyByNode(ctx context.Context) (map[string]NodeVerification, []string) {
	return fanOut(n, ctx, http.MethodPost, "/v1/sys/audit/local/verify", n.localVerify)
}
