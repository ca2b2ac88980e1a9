//go:build bench

package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/renewal"
)

// Issue "renewal engine": with 100,000 certificates, how long planning
// takes and what the plans hold in memory, and what one scheduler tick
// costs when nothing is due (it must not grow with the number of
// certificates).

const (
	groupSchedule  = "schedule"
	scheduleCerts  = 100_000
	scheduleBatch  = 500
	scheduleTicks  = 20_000
	schedulePrefix = "sched/certificates/" // vault's plan keys: sched/certificates/DUE/NAME
)

// scheduleResult is the group's figures.
type scheduleResult struct {
	Certificates int `json:"certificates"`
	// PlanNs is the time to plan one version (renewal.Due), in ns.
	PlanNs float64 `json:"plan_ns"`
	// PlanBytes is the heap the plans of all certificates (the renewal
	// plan and the two expiry-event plans each) hold in the in-memory
	// state, per certificate and in all.
	PlanBytesPerCert float64 `json:"plan_bytes_per_certificate"`
	PlanBytesTotal   uint64  `json:"plan_bytes_total"`
	// TickNs is one scheduler tick with nothing due (the leader lists the
	// plans that are due, at most 64), in ns, with SmallTickNs the same
	// with 1,000 certificates for comparison.
	TickNs      float64      `json:"tick_ns"`
	SmallTickNs float64      `json:"tick_ns_1000_certificates"`
	Goal        scheduleGoal `json:"goal"`
}

// scheduleGoal is the goal for the scheduler and the verdict.
type scheduleGoal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// runSchedule measures the scheduler on an in-process store.
func runSchedule(t *testing.T) *scheduleResult {
	p := &keyvault.Policy{X509Properties: &keyvault.X509Properties{Subject: "CN=x", ValidityInMonths: 12}}
	if err := p.Normalize(); err != nil { // AutoRenew at 80 %
		t.Fatal(err)
	}
	now := time.Now()
	nbf, exp := now, now.AddDate(1, 0, 0)
	names := make([]string, scheduleCerts)
	for i := range names {
		names[i] = fmt.Sprintf("cert-%06d", i)
	}
	start := time.Now()
	dues := make([]time.Time, scheduleCerts)
	for i, n := range names {
		d, ok := renewal.Due(p, n, nbf, exp, nil)
		if !ok {
			t.Fatal("no plan")
		}
		dues[i] = d
	}
	planNs := float64(time.Since(start).Nanoseconds()) / scheduleCerts

	tick := func(s *raftstore.Store) float64 {
		begin := time.Now()
		for range scheduleTicks {
			entries, _ := s.List(schedulePrefix, "", 64)
			if len(entries) == 0 || !strings.HasPrefix(entries[0].Key, schedulePrefix) {
				t.Fatal("no plans listed")
			}
		}
		return float64(time.Since(begin).Nanoseconds()) / scheduleTicks
	}
	fill := func(s *raftstore.Store, n int) {
		for i := 0; i < n; i += scheduleBatch {
			b := &raftstore.Batch{}
			for j := i; j < min(i+scheduleBatch, n); j++ {
				// The renewal plan and the two expiry-event plans.
				v := []byte(`{"version":"0123456789abcdef0123456789abcdef"}`)
				b.Put(fmt.Sprintf("%s%012d/%s", schedulePrefix, dues[j].Unix(), names[j]), v)
				b.Put(fmt.Sprintf("schedevt/%012d/certificates/%s/CertificateNearExpiry", exp.Add(-30*24*time.Hour).Unix(), names[j]), v)
				b.Put(fmt.Sprintf("schedevt/%012d/certificates/%s/CertificateExpired", exp.Unix(), names[j]), v)
			}
			if _, err := s.Apply(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
	}

	small := openStore(t)
	fill(small, 1000)
	smallTick := tick(small)

	s := openStore(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fill(s, scheduleCerts)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
	bigTick := tick(s)

	r := &scheduleResult{
		Certificates: scheduleCerts, PlanNs: planNs,
		PlanBytesTotal: held, PlanBytesPerCert: float64(held) / scheduleCerts,
		TickNs: bigTick, SmallTickNs: smallTick,
	}
	ratio := bigTick / smallTick
	r.Goal = scheduleGoal{
		Goal:     "no per-tick work proportional to the number of certificates; planning a change under 1 ms",
		Measured: fmt.Sprintf("tick %.1f µs with %d certificates vs %.1f µs with 1,000 (x%.1f); planning %.2f µs", bigTick/1e3, scheduleCerts, smallTick/1e3, ratio, planNs/1e3),
		Met:      ratio < 3 && planNs < 1e6,
	}
	t.Logf("schedule: plan %.2f µs/version, plans hold %.0f B/certificate (%.1f MB for %d), tick %.1f µs (%.1f µs with 1,000)",
		planNs/1e3, r.PlanBytesPerCert, float64(held)/1e6, scheduleCerts, bigTick/1e3, smallTick/1e3)
	return r
}

// scheduleTable prints the group's figures.
func scheduleTable(r *scheduleResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nrenewal scheduler, %d certificates (in-process store, plans as the vault writes them)\n", r.Certificates)
	fmt.Fprintf(&b, "plan one version (renewal.Due):      %8.2f µs\n", r.PlanNs/1e3)
	fmt.Fprintf(&b, "plans in memory:                     %8.0f B/certificate, %.1f MB in all\n", r.PlanBytesPerCert, float64(r.PlanBytesTotal)/1e6)
	fmt.Fprintf(&b, "one tick, nothing due:               %8.2f µs (%.2f µs with 1,000 certificates)\n", r.TickNs/1e3, r.SmallTickNs/1e3)
	met := "NOT met"
	if r.Goal.Met {
		met = "met"
	}
	fmt.Fprintf(&b, "goal: %s: measured %s: %s\n", r.Goal.Goal, r.Goal.Measured, met)
	return b.String()
}
