package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	c := Config{MaxPercent: 200, Fixed: 128 << 20}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 200},
		{30 << 20, 200},  // headroom 60 MB at 200 %, under 128 + 15
		{128 << 20, 150}, // 128 + 64 = 192 MB of 128
		{700 << 20, 68},  // 128 + 350 = 478 MB of 700: a million versions
		{8 << 30, 51},    // 128 MB + 4 GB: the half dominates
		{1 << 62, 50},    // never below half
	} {
		if got := c.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// gogc reads the current GOGC.
func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestTunerFollowsLiveHeap: with a live heap much larger than Fixed,
// the tuner lowers GOGC after a collection, raises it back when the heap
// is freed, and leaves it alone once stopped.
func TestTunerFollowsLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	c := Config{MaxPercent: 200, Fixed: 1 << 20}
	tu := Start(c)
	defer tu.Stop()
	waitGOGC := func(ok func(int64) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok(gogc()) {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC is %d, want %s", gogc(), what)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20) // 64 MB live: headroom 1 + 32 MB, about 51 %
	}
	waitGOGC(func(p int64) bool { return p < 60 }, "about 51 with 64 MB live")
	runtime.KeepAlive(live)
	live = nil
	waitGOGC(func(p int64) bool { return p > 150 }, "back near 200 once the heap is freed")
	tu.Stop()
	debug.SetGCPercent(77)
	runtime.GC()
	runtime.GC()
	if p := gogc(); p != 77 {
		t.Fatalf("a stopped tuner changed GOGC to %d", p)
	}
}
