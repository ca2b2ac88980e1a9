package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func rec(i int) Record {
	return Record{Time: time.Unix(int64(1000+i), 0).UTC(), Node: "n1", Principal: "alice", Method: "PUT",
		Operation: "PUT /secrets/{name}", Object: fmt.Sprintf("/secrets/s%d", i), Status: 200, Outcome: "allowed"}
}

// changes records what OnChange reported.
type changes struct {
	mu  sync.Mutex
	got []error
}

func (c *changes) add(err error) {
	c.mu.Lock()
	c.got = append(c.got, err)
	c.mu.Unlock()
}

func (c *changes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.got)
}

// waitHealed polls until the log takes records again.
func waitHealed(t *testing.T, l *Log) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the log did not heal within 30s: its last error was %v", l.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGap verifies the trail and its one gap record.
func checkGap(t *testing.T, dir string, records uint64, lost uint64, cause string) {
	t.Helper()
	res, err := VerifyTrail(dir)
	if err != nil || !res.OK || res.Records != records || res.Gaps != 1 || res.Lost != lost {
		t.Fatalf("verify after healing: %+v, %v; want ok, %d records, 1 gap of %d", res, err, records, lost)
	}
	var gap Record
	if err := ReadTrail(dir, Filter{Outcome: OutcomeGap}, func(r Record) bool { gap = r; return true }); err != nil {
		t.Fatalf("read the gap record: %v", err)
	}
	if gap.Lost != lost || gap.Node != "n1" || !strings.Contains(gap.Detail, cause) {
		t.Fatalf("gap record: %+v; want %d lost on n1 and the cause %q", gap, lost, cause)
	}
}

// TestLogHealsWhenRoomReturns: while Room says no, the log refuses and
// counts records; once it says yes again the log writes a gap record and
// takes records, without reopening, and the trail verifies.
func TestLogHealsWhenRoomReturns(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	var ch changes
	l, err := OpenWith(dir, Options{
		OnChange: ch.add,
		Room: func() error {
			if full.Load() {
				return fmt.Errorf("reserve reached: %w", syscall.ENOSPC)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		if err := l.AppendSync(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	full.Store(true)
	err = l.AppendSync(context.Background(), rec(3))
	if !errors.Is(err, ErrBroken) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append with no room: got %v, want ErrBroken wrapping ENOSPC", err)
	}
	if err := l.Append(rec(4)); !errors.Is(err, ErrBroken) {
		t.Fatalf("append while broken: got %v", err)
	}
	if err := l.AppendSync(context.Background(), rec(5)); !errors.Is(err, ErrBroken) {
		t.Fatalf("sync append while broken: got %v", err)
	}
	if h := l.DurableHead(); h.Seq != 3 {
		t.Fatalf("durable head while broken: %d, want 3", h.Seq)
	}
	full.Store(false)
	waitHealed(t, l)
	if err := l.AppendSync(context.Background(), rec(6)); err != nil {
		t.Fatalf("append after healing: %v", err)
	}
	if h := l.DurableHead(); h.Seq != 5 {
		t.Fatalf("durable head after healing: %d, want 5 (3 records, the gap, 1 more)", h.Seq)
	}
	checkGap(t, dir, 5, 3, "reserve reached")
	if s := ch.String(); !strings.HasPrefix(s, "[audit: log cannot be written") || !strings.HasSuffix(s, " <nil>]") {
		t.Fatalf("OnChange calls: %s; want the error, then nil", s)
	}
}

// TestLogHealsAfterENOSPC fills a real (tmpfs) file system under the
// trail: the failed write leaves no torn or unsynced record behind, and
// once space is freed the log heals by itself.
func TestLogHealsAfterENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: run as root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("mount a tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "audit")
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 3 {
		if err := l.AppendSync(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Fill the file system; then records that are not waited for and one
	// that is: the write fails, and nothing of it stays.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{1}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// Records larger than a page, so that none fits in the slack of the
	// file's last page: each write needs space the disk does not have.
	big := func(i int) Record {
		r := rec(i)
		r.Object = "/secrets/" + strings.Repeat("x", 5000)
		return r
	}
	for i := 3; i < 40; i++ {
		// Queued, or refused once the log broke: lost either way.
		if err := l.Append(big(i)); err != nil && !errors.Is(err, ErrBroken) {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	err = l.AppendSync(context.Background(), big(40))
	const lost = 38
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: got %v, want ENOSPC", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 3 || data[len(data)-1] != '\n' {
		t.Fatalf("after the failed write the file holds %d lines (ends %q); want the 3 durable records, whole", n, data[len(data)-1:])
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitHealed(t, l)
	if err := l.AppendSync(context.Background(), rec(41)); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
	checkGap(t, dir, 5, lost, "no space left on device")
}
