package vault

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/renewal"
)

// testClock is the node's clock (Options.Time) in these tests: it stands
// still until the test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startClockNode starts a real single-node vault (raft, barrier, the
// leader's scheduler) in this process, on the given clock.
func startClockNode(t *testing.T, clock *testClock) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{
		DataDir: t.TempDir(), Listen: freeAddr(t), RaftListen: freeAddr(t), NodeID: "clock-node",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogLevel: "error", Time: clock.Now,
	})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); n.Barrier.Load() == nil || !n.Store.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node did not lead with an open barrier within 30 s")
		}
	}
	return n
}

// createCert makes a certificate through the issuance core, as POST
// /certificates/NAME/create does.
func createCert(t *testing.T, n *Node, name string, x509 keyvault.X509Properties, trig keyvault.Trigger) {
	t.Helper()
	p := &keyvault.Policy{
		KeyProperties:   &keyvault.KeyProperties{KeyType: keyvault.KeyTypeEC, Curve: "P-256"},
		X509Properties:  &x509,
		LifetimeActions: []keyvault.LifetimeAction{{Trigger: trig, Action: keyvault.Action{ActionType: keyvault.ActionAutoRenew}}},
	}
	if err := p.Normalize(); err != nil {
		t.Fatalf("policy of %s: %v", name, err)
	}
	op, _, err := n.StartIssuance(context.Background(), core.Caller{}, name, p, nil, nil)
	if err != nil || op.Status != keyvault.StatusCompleted {
		t.Fatalf("create %s: %v %+v", name, err, op)
	}
}

func versionCount(n *Node, name string) int {
	vs, _ := n.Store.List(core.VerPrefix(core.KindCertificates, name), "", 0)
	return len(vs)
}

// planOf returns when the current version's renewal is planned (zero when
// there is no plan) and the current version.
func planOf(t *testing.T, n *Node, name string) (time.Time, core.ObjectMeta) {
	t.Helper()
	cm, _, ok, err := n.LoadMeta(core.KindCertificates, name)
	if err != nil || !ok {
		t.Fatalf("meta of %s: %v %v", name, ok, err)
	}
	if cm.Plan == "" {
		return time.Time{}, cm
	}
	secs, _, _ := strings.Cut(strings.TrimPrefix(cm.Plan, core.SchedPrefix), "/")
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		t.Fatalf("plan key %q: %v", cm.Plan, err)
	}
	return time.Unix(s, 0), cm
}

// waitVersions polls until name has want versions.
func waitVersions(t *testing.T, n *Node, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for got := versionCount(n, name); got != want; got = versionCount(n, name) {
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%s has %d versions, want %d", name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLongLifetimeRenewedOnceWhenDue: certificates valid 44 and 1200
// months with AutoRenew at 80 % (whose lifetime × 80 overflows int64
// nanoseconds) are planned at 80 % of their lifetime, are not renewed
// before it, and are renewed exactly once when the clock reaches it; the
// new version is planned 80 % of its own lifetime later.
func TestLongLifetimeRenewedOnceWhenDue(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := &testClock{t: t0}
	n := startClockNode(t, clock)
	ctx := context.Background()
	for _, months := range []int{44, 1200} {
		name := "long" + strconv.Itoa(months)
		createCert(t, n, name, keyvault.X509Properties{Subject: "CN=" + name, ValidityInMonths: months}, keyvault.Trigger{LifetimePercentage: 80})
		due, cm := planOf(t, n, name)
		created, exp := cm.Summary.Created, *cm.Summary.Expires
		want := time.Unix(created+(exp-created)/100*80+(exp-created)%100*80/100, 0)
		if due.After(want) || due.Before(want.Add(-time.Hour)) {
			t.Fatalf("%s: renewal planned at %v, want within the hour before %v (80 %% of %v..%v)", name, due, want, time.Unix(created, 0), time.Unix(exp, 0))
		}

		// Before its time: a second after it was made, and a second
		// before it is due.
		for _, at := range []time.Time{t0.Add(time.Second), due.Add(-time.Second)} {
			clock.Set(at)
			n.RenewDue(ctx, at)
			if got := versionCount(n, name); got != 1 {
				t.Fatalf("%s has %d versions at %v, before its renewal is due at %v", name, got, at, due)
			}
		}
		// At its time: renewed once, by this call or the leader's
		// scheduler (both run on the clock); later calls find nothing due.
		clock.Set(due)
		n.RenewDue(ctx, due)
		waitVersions(t, n, name, 2)
		for _, at := range []time.Time{due, due.Add(time.Hour), due.AddDate(0, 1, 0)} {
			clock.Set(at)
			n.RenewDue(ctx, at)
			if got := versionCount(n, name); got != 2 {
				t.Fatalf("%s has %d versions at %v, want 2 (renewed once at %v)", name, got, at, due)
			}
		}
		next, cm2 := planOf(t, n, name)
		if cm2.Summary.Created != due.Unix() {
			t.Fatalf("%s: the new version was made at %v, want at the due time %v", name, time.Unix(cm2.Summary.Created, 0), due)
		}
		lifetime := time.Unix(*cm2.Summary.Expires, 0).Sub(due)
		if wantNext := due.Add(lifetime / 100 * 80); next.After(wantNext) || next.Before(wantNext.Add(-time.Hour-time.Second)) {
			t.Fatalf("%s: the new version is planned at %v, want within the hour before %v", name, next, wantNext)
		}
		clock.Set(t0)
	}
}

// TestRenewalBrakeHalts: a certificate whose policy makes each version
// due the moment it is made (1 % of a minute) is renewed automatically
// three times, then halted: no plan, a failed pending operation that says
// why, no fourth renewal however late the clock, and a renewal that
// reaches the issuance core anyway is refused there. A version a person
// makes clears the halt and the count: three more renewals, then halted
// again.
func TestRenewalBrakeHalts(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := &testClock{t: t0}
	n := startClockNode(t, clock)
	ctx := context.Background()
	waitHalted := func(versions int) core.ObjectMeta {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			// The leader's scheduler renews on its own: every version is
			// due at once on the standing clock.
			n.RenewDue(ctx, clock.Now())
			_, cm := planOf(t, n, "spin")
			if cm.Halted != nil {
				if got := versionCount(n, "spin"); got != versions {
					t.Fatalf("halted with %d versions, want %d (%d automatic renewals)", got, versions, renewal.BrakeRenewals)
				}
				return cm
			}
			if got := versionCount(n, "spin"); got > versions || time.Now().After(deadline) {
				t.Fatalf("not halted: %d versions, want %d then a halt", got, versions)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	createCert(t, n, "spin", keyvault.X509Properties{Subject: "CN=spin", ValidityDuration: "1m"}, keyvault.Trigger{LifetimePercentage: 1})
	cm := waitHalted(1 + renewal.BrakeRenewals)
	if cm.Plan != "" || cm.Halted.Version != cm.Current || !strings.Contains(cm.Halted.Reason, "renewed automatically 3 times within 1m0s") {
		t.Fatalf("halted certificate: plan %q, halt %+v, current %s", cm.Plan, cm.Halted, cm.Current)
	}
	op, _, ok, err := n.LoadPending("spin")
	if err != nil || !ok || op.Status != keyvault.StatusFailed || op.Error == nil || op.Error.Code != "RenewalHalted" {
		t.Fatalf("pending operation after the halt: %v %v %+v", ok, err, op)
	}
	for _, at := range []time.Time{t0.Add(time.Minute), t0.Add(time.Hour), t0.AddDate(1, 0, 0)} {
		clock.Set(at)
		n.RenewDue(ctx, at)
		if got := versionCount(n, "spin"); got != 1+renewal.BrakeRenewals {
			t.Fatalf("%d versions at %v after the halt, want %d", got, at, 1+renewal.BrakeRenewals)
		}
	}
	policy, _, _, err := n.LoadPolicy("spin")
	if err != nil {
		t.Fatal(err)
	}
	asRenewal := func(b *raftstore.Batch, op *core.PendingOp) error { op.Renewal = true; return nil }
	if _, _, err := n.StartIssuance(ctx, core.Caller{}, "spin", policy, nil, nil, asRenewal); !errors.Is(err, core.ErrRenewalHalted) {
		t.Fatalf("a renewal of a halted certificate through the issuance core: %v, want ErrRenewalHalted", err)
	}
	// A person creates a version: three more automatic renewals, then
	// halted again.
	clock.Set(t0.AddDate(1, 0, 1))
	if op, _, err := n.StartIssuance(ctx, core.Caller{}, "spin", policy, nil, nil); err != nil || op.Status != keyvault.StatusCompleted {
		t.Fatalf("a person's create of a halted certificate: %v %+v", err, op)
	}
	waitHalted(2 + 2*renewal.BrakeRenewals)
}

// TestCreateRetriedAfterConcurrentChange: a person's create that loses the
// race with another write to the certificate (as the scheduler's writes can
// win it on a busy node) is made again and succeeds, instead of answering
// 409; a create that loses every try still answers 409 Conflict.
func TestCreateRetriedAfterConcurrentChange(t *testing.T) {
	clock := &testClock{}
	clock.Set(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	n := startClockNode(t, clock)
	// 90 days: nothing of the vault's own (a near-expiry event, a
	// renewal) is due during the test to touch the record besides touch.
	createCert(t, n, "racy", keyvault.X509Properties{Subject: "CN=racy", ValidityDuration: "2160h"}, keyvault.Trigger{LifetimePercentage: 80})
	policy, _, _, err := n.LoadPolicy("racy")
	if err != nil {
		t.Fatal(err)
	}
	// touch rewrites the certificate's meta record as it is, which moves
	// its index: the issuance's precondition no longer holds.
	touch := func() {
		_, prev, ok, err := n.LoadMeta(core.KindCertificates, "racy")
		if err != nil || !ok {
			t.Errorf("meta of racy: %v %v", ok, err)
			return
		}
		if _, err := n.Store.Apply(context.Background(), (&raftstore.Batch{}).Put(prev.Key, prev.Value)); err != nil {
			t.Errorf("touch meta: %v", err)
		}
	}
	tries := 0
	n.BeforeIssuanceApply = func(string) {
		if tries++; tries == 1 {
			touch()
		}
	}
	op, _, err := n.StartIssuance(context.Background(), core.Caller{}, "racy", policy, nil, nil)
	if err != nil || op.Status != keyvault.StatusCompleted || tries != 2 {
		t.Fatalf("create after one lost race: %v %+v after %d tries, want completed after 2", err, op, tries)
	}
	if got := versionCount(n, "racy"); got != 2 {
		t.Fatalf("%d versions, want 2", got)
	}

	tries = 0
	n.BeforeIssuanceApply = func(string) { tries++; touch() }
	_, _, err = n.StartIssuance(context.Background(), core.Caller{}, "racy", policy, nil, nil)
	// The core answers a core error; the front classifies it as it would.
	var ae *front.APIError
	if !errors.As(n.classify(err), &ae) || ae.Status != http.StatusConflict || tries != issuance.IssuanceTries {
		t.Fatalf("create that always loses: %v after %d tries, want 409 after %d", err, tries, issuance.IssuanceTries)
	}
	if got := versionCount(n, "racy"); got != 2 {
		t.Fatalf("%d versions after the refused create, want 2", got)
	}
}
