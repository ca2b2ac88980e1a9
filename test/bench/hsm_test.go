//go:build bench

package bench

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/test/softhsmtest"
	"github.com/certvault/certvault/vault/hsm"
)

// Issue "HSM-backed keys", item 7: ECDSA P-256 signatures per second with
// a key inside a SoftHSM2 token, made straight through crypto11 by this
// process and through the keys API of a single node that keeps its keys
// in the same token.

// Result kinds of the HSM group.
const (
	// kindHSMDirect rows count ES256 signatures goroutines of this
	// process made through crypto11 on one EC P-256 key in the token.
	kindHSMDirect = "hsm-direct"
	// kindHSMSign rows count POST /keys/{name}/sign answered 200 with a
	// 64-byte ES256 signature, on one EC-HSM P-256 key in the same token.
	kindHSMSign = "hsm-sign"
)

// Benchmark and group names of the HSM group, as the table shows them.
const (
	benchHSMDirect  = "hsm-direct"
	benchHSMSign    = "hsm-sign"
	groupHSM        = "hsm"
	targetHSMDirect = "this process: goroutines calling crypto11's Sign (ECDSA, SHA-256 digest) on one EC P-256 key in the SoftHSM2 token"
	targetHSMSign   = "the single node: POST /keys/{name}/sign, ES256, on one EC-HSM P-256 key in the same SoftHSM2 token"
	// hsmTokenLabel labels the token both paths use.
	hsmTokenLabel = "bench"
	// hsmKeyName is the key the API path signs with.
	hsmKeyName = "hsm-bench"
)

// hsmDigest is the SHA-256 digest every signature of the group signs.
var hsmDigest = sha256.Sum256([]byte("certvault hsm bench"))

// isHSMKind reports whether rows of kind belong to the HSM group.
func isHSMKind(kind string) bool { return kind == kindHSMDirect || kind == kindHSMSign }

// hsmDirectLoad returns a load of clients goroutines of this process, each
// signing hsmDigest with signer (a crypto11 key: every call takes a
// session from the context's pool, runs C_SignInit + C_Sign in the token
// and returns the session), with no storage, JSON, HTTP or TLS. The CPU
// it reports is this process's, SoftHSM2's work included.
func hsmDirectLoad(signer crypto.Signer, clients int, warmup, measure time.Duration) load {
	sign := func(int) string {
		sig, err := signer.Sign(rand.Reader, hsmDigest[:], crypto.SHA256)
		if err != nil {
			return "sign"
		}
		if len(sig) == 0 {
			return "empty"
		}
		return ""
	}
	return load{clients: clients, warmup: warmup, measure: measure, write: sign}
}

// createHSMKey creates the EC-HSM P-256 key name through the keys API and
// returns its public key.
func (a *apiBench) createHSMKey(name string) (*ecdsa.PublicKey, error) {
	hc := a.httpClient(1)
	defer hc.CloseIdleConnections()
	url := a.cluster.Nodes[0].URL() + "/keys/" + name + "/create?api-version=7.6"
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"kty":"EC-HSM","crv":"P-256"}`))
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", name, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cluster.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", name, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("create key %s: read the answer: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("create key %s: status %d, body %.300s", name, resp.StatusCode, b)
	}
	var k keyvault.Key
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("create key %s: %w", name, err)
	}
	if k.Key.Kty != "EC-HSM" || k.Key.Crv != "P-256" {
		return nil, fmt.Errorf("create key %s: kty %q crv %q, want EC-HSM P-256", name, k.Key.Kty, k.Key.Crv)
	}
	point := append([]byte{4}, append(leftPad(k.Key.X, 32), leftPad(k.Key.Y, 32)...)...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("create key %s: public key: %w", name, err)
	}
	return pub, nil
}

// leftPad returns b left-padded with zeros to n bytes.
func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// hsmSignBody is the body of every sign request: ES256 over hsmDigest.
func hsmSignBody() []byte {
	return []byte(`{"alg":"ES256","value":"` + base64.RawURLEncoding.EncodeToString(hsmDigest[:]) + `"}`)
}

// signResponse is the part of a sign answer the benchmark reads.
type signResponse struct {
	Kid   string          `json:"kid"`
	Value keyvault.B64URL `json:"value"`
}

// signLoad returns a load of clients callers, each signing hsmDigest with
// key name through POST /keys/{name}/sign on the single node, over its own
// keep-alive HTTPS connection with the root token; a signature counts
// only when it is answered 200 with a 64-byte value (r || s).
func (a *apiBench) signLoad(clients int, name string, warmup, measure time.Duration) load {
	hc := a.httpClient(clients)
	url := a.cluster.Nodes[0].URL() + "/keys/" + name + "/sign?api-version=7.6"
	body := hsmSignBody()
	bufs := make([]bytes.Buffer, clients) // caller i touches only bufs[i]
	auth := "Bearer " + a.cluster.Token
	sign := func(i int) string {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return "request"
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		b := &bufs[i]
		if class := roundTrip(hc, req, b); class != "" {
			return class
		}
		var out signResponse
		if err := json.Unmarshal(b.Bytes(), &out); err != nil {
			return "body"
		}
		if len(out.Value) != 64 {
			return "value"
		}
		return ""
	}
	return a.newLoad(hc, clients, sign, warmup, measure)
}

// checkSign signs once through the API and verifies the signature with
// the key's public key, so that a run whose answers only looked like
// signatures does not pass unnoticed.
func (a *apiBench) checkSign(name string, pub *ecdsa.PublicKey) error {
	hc := a.httpClient(1)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, a.cluster.Nodes[0].URL()+"/keys/"+name+"/sign?api-version=7.6", bytes.NewReader(hsmSignBody()))
	if err != nil {
		return fmt.Errorf("check signature: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.cluster.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("check signature: %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("check signature: read the answer: %w", err)
	}
	var out signResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Value) != 64 {
		return fmt.Errorf("check signature: status %d, body %.300s", resp.StatusCode, b)
	}
	r, s := new(big.Int).SetBytes(out.Value[:32]), new(big.Int).SetBytes(out.Value[32:])
	if !ecdsa.Verify(pub, hsmDigest[:], r, s) {
		return fmt.Errorf("check signature: the API's ES256 signature does not verify with the key's public key")
	}
	return nil
}

// hsmToken initializes the SoftHSM2 token both paths of the group use, or
// skips the test when the build has no PKCS#11 (cgo) or, for a user who
// cannot install it, the machine has no SoftHSM2. softhsmtest.New sets
// SOFTHSM2_CONF with t.Setenv: the group must not run in parallel.
func hsmToken(t *testing.T) *softhsmtest.Token {
	t.Helper()
	if !hsm.Built {
		t.Skip("built without cgo: no PKCS#11")
	}
	return softhsmtest.New(t, hsmTokenLabel)
}

// runHSM runs the HSM group on tok: the direct rows first, with no node
// running, then the API rows on a single node started with the same
// token, one row per client count each.
func runHSM(t *testing.T, cfg config, tok *softhsmtest.Token, add func(*testing.T, result)) {
	h, err := hsm.Open(hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PINFile: tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			h.Close()
		}
	})
	signer, err := h.GenerateEC([]byte("bench-direct"), elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, hsmDigest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(signer.Public().(*ecdsa.PublicKey), hsmDigest[:], sig) {
		t.Fatalf("direct signature does not verify (err %v)", err)
	}
	for _, n := range cfg.Clients {
		st, err := hsmDirectLoad(signer, n, cfg.warmup(), cfg.measure()).run()
		if err != nil {
			t.Fatal(err)
		}
		add(t, result{Benchmark: benchHSMDirect, Kind: kindHSMDirect, Clients: n, Target: targetHSMDirect, runStats: st})
	}
	// This process's sessions end before the node starts, so that the API
	// rows share the token with nothing but the node.
	closed = true
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	a := newAPIBenchArgs(t, 1, tok.Args())
	pub, err := a.createHSMKey(hsmKeyName)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.checkSign(hsmKeyName, pub); err != nil {
		t.Fatal(err)
	}
	for _, n := range cfg.Clients {
		st, err := a.signLoad(n, hsmKeyName, cfg.warmup(), cfg.measure()).run()
		if err != nil {
			t.Fatal(err)
		}
		add(t, result{Benchmark: benchHSMSign, Kind: kindHSMSign, Nodes: 1, Clients: n, Target: targetHSMSign, runStats: st})
	}
	if err := a.checkSign(hsmKeyName, pub); err != nil {
		t.Error(err)
	}
}

// hsmDirectRate returns the hsm-direct signatures/s at clients, or 0 when
// that row was not run.
func hsmDirectRate(results []result, clients int) float64 {
	for _, r := range results {
		if r.Kind == kindHSMDirect && r.Clients == clients {
			return r.WritesPerSec
		}
	}
	return 0
}

// annotateHSM sets each hsm-sign row's share of the hsm-direct rate at the
// same client count measured in the same run.
func annotateHSM(results []result) {
	for i := range results {
		if results[i].Kind != kindHSMSign {
			continue
		}
		if d := hsmDirectRate(results, results[i].Clients); d > 0 {
			pct := 100 * results[i].WritesPerSec / d
			results[i].PctOfDirect = &pct
		}
	}
}

// unitPctDirect is the unit of the goal relative to the direct rate.
const unitPctDirect = "% of direct crypto11 rate"

// hsmChecks measures the results against the HSM goal: at the client
// count where the API signs most, its rate as a share of the direct rate
// at the same client count.
func hsmChecks(results []result) []check {
	c := check{Description: `issue "HSM-backed keys": >= 70 % of the direct crypto11 rate through the keys API (ES256, EC P-256, one node; at the client count where the API signs most, against the direct rate at that count)`,
		Unit: unitPctDirect, Target: 70, Benchmark: benchHSMSign, Nodes: 1}
	var best *result
	for i := range results {
		r := &results[i]
		if r.Kind == kindHSMSign && r.PctOfDirect != nil && (best == nil || r.WritesPerSec > best.WritesPerSec) {
			best = r
		}
	}
	if best != nil {
		m := *best.PctOfDirect
		met := m >= c.Target
		c.Clients, c.Measured, c.Met = best.Clients, &m, &met
		c.Detail = fmt.Sprintf("%s of %s signatures/s", fmtFigure(best.WritesPerSec), fmtFigure(hsmDirectRate(results, best.Clients)))
		var top result
		for _, r := range results {
			if r.Kind == kindHSMDirect && r.WritesPerSec > top.WritesPerSec {
				top = r
			}
		}
		if top.Clients != best.Clients && top.WritesPerSec > 0 {
			c.Detail += fmt.Sprintf("; %.0f %% of the best direct rate, %s at %d clients", 100*best.WritesPerSec/top.WritesPerSec, fmtFigure(top.WritesPerSec), top.Clients)
		}
	}
	return []check{c}
}

var hsmAnchors = []figure{
	{System: "Azure Key Vault Premium", Value: 200, Unit: "HSM-key EC P-256 signs/s", Note: "service limit: 2,000 HSM-key transactions (other than create) per 10 s per vault"},
}

// hsmTable renders the HSM group's rows, its goal and anchors.
func (r *report) hsmTable(b *strings.Builder) {
	rows := rowsOfKind(r.Results, isHSMKind)
	if len(rows) == 0 {
		return
	}
	const row = "%-10s %5s %7s %9s %8s %8s %8s %8s %7s %10s %10s %10s %10s\n"
	fmt.Fprintf(b, "\nHSM signatures (SoftHSM2 token), %.0f s per run after %.0f s warm-up\n", r.Config.Seconds, r.Config.WarmupSeconds)
	fmt.Fprintf(b, row, "benchmark", "nodes", "clients", "sigs/s", "% direct", "p50 ms", "p99 ms", "max ms", "errors", "vault CPU%", "bench CPU%", "other CPU%", "CPU µs/op")
	for _, res := range rows {
		nodes, pct, vault := fmt.Sprint(res.Nodes), "-", fmt.Sprintf("%.0f", res.ServerCPUPct)
		if res.Kind == kindHSMDirect {
			nodes, vault = "-", "-"
		}
		if res.PctOfDirect != nil {
			pct = fmt.Sprintf("%.0f", *res.PctOfDirect)
		}
		fmt.Fprintf(b, row, res.Benchmark, nodes, fmt.Sprint(res.Clients), fmt.Sprintf("%.0f", res.WritesPerSec), pct,
			fmt.Sprintf("%.2f", res.P50ms), fmt.Sprintf("%.2f", res.P99ms), fmt.Sprintf("%.1f", res.Maxms), fmt.Sprint(res.Errors),
			vault, fmt.Sprintf("%.0f", res.BenchCPUPct), fmt.Sprintf("%.0f", res.OtherCPUPct), cpuPerOp(res))
	}
	b.WriteString("\nhsm-direct: " + targetHSMDirect + ";\n")
	b.WriteString("     clients = goroutines sharing one crypto11 context (hsm.Open: at most 64 sessions, more goroutines wait for one);\n")
	b.WriteString("     run first, with no node running; CPU% and CPU µs/op are this process's, SoftHSM2 included.\n")
	b.WriteString("hsm-sign: POST /keys/{name}/sign {alg ES256, a 32-byte digest} over HTTPS, one keep-alive HTTP/1.1 connection per client,\n")
	b.WriteString("     root token; only 200 answers with a 64-byte signature count. The node keeps its keys (and its seal key) in the\n")
	b.WriteString("     same token, which it opens with its own crypto11 sessions. % direct = sigs/s of hsm-direct at the same client count.\n")
	b.WriteString("CPU µs/op: CPU time per signature of this process for hsm-direct, of the certvaultd process for hsm-sign.\n")
	b.WriteString("\n")
	writeChecks(b, r.HSMGoals, " through the keys API", func(v float64) string { return fmt.Sprintf("%.1f", v) })
	writeAnchors(b, r.HSMAnchors)
}
