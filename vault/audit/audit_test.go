package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeTrail(t *testing.T, n int) (string, Head) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Record{Time: time.Unix(int64(1000+i), 0).UTC(), Principal: "alice", Method: "GET", Operation: "GET /secrets/{name}", Object: "/secrets/db", Status: 200, Outcome: "allowed"}
			if i%2 == 0 {
				if err := l.AppendSync(context.Background(), r); err != nil {
					t.Error(err)
				}
			} else if err := l.Append(r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, FileName), head
}

func lines(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
}

func save(t *testing.T, path string, ls []string) {
	s := strings.Join(ls, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	path, head := writeTrail(t, 50)
	if head.Seq != 50 {
		t.Fatalf("head = %d, want 50", head.Seq)
	}
	res, err := Verify(path, head)
	if err != nil || !res.OK || res.Records != 50 {
		t.Fatalf("Verify intact = %+v, %v", res, err)
	}
	orig := lines(t, path)
	for _, tc := range []struct {
		name    string
		edit    func([]string) []string
		seq     uint64
		reason  string
		anchors []Head
	}{
		{"changed", func(ls []string) []string {
			ls[9] = strings.Replace(ls[9], `"principal":"alice"`, `"principal":"mallory"`, 1)
			return ls
		}, 10, "was changed", nil},
		{"removed", func(ls []string) []string { return append(ls[:19:19], ls[20:]...) }, 20, "missing", nil},
		{"duplicated", func(ls []string) []string { return append(ls[:20:20], ls[18:]...) }, 21, "out of order", nil},
		{"reordered", func(ls []string) []string { ls[29], ls[30] = ls[30], ls[29]; return ls }, 30, "found 31 after 29", nil},
		{"garbled", func(ls []string) []string { ls[4] = "{not json\n"; return ls }, 5, "does not parse", nil},
		{"tail cut", func(ls []string) []string { return ls[:45] }, 46, "removed from the end", []Head{head}},
		{"rewritten", func(ls []string) []string { return rechain(t, ls, 12) }, 50, "after record 10 the trail was changed", []Head{{Seq: 10, Hash: hashAt(t, orig, 9)}, head}},
	} {
		ls := tc.edit(append([]string(nil), orig...))
		save(t, path, ls)
		res, err := Verify(path, tc.anchors...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.OK || res.Problem == nil || res.Problem.Seq != tc.seq || !strings.Contains(res.Problem.Reason, tc.reason) {
			t.Errorf("%s: Verify = %+v %+v, want record %d %q", tc.name, res, res.Problem, tc.seq, tc.reason)
		}
	}
}

// rechain edits record i (0-based line) and recomputes every hash after
// it, as an attacker without the raft anchor would.
func rechain(t *testing.T, ls []string, i int) []string {
	prev := genesis
	var out []string
	path := filepath.Join(t.TempDir(), "x")
	for j, s := range ls {
		save(t, path, []string{s})
		var r Record
		if err := Read(path, Filter{}, func(x Record) bool { r = x; return false }); err != nil {
			t.Fatalf("read record %d: %v", j, err)
		}
		if j == i {
			r.Principal = "mallory"
		}
		r.Prev = prev
		h, err := chainHash(r)
		if err != nil {
			t.Fatalf("hash record %d: %v", j, err)
		}
		r.Hash = h
		prev = r.Hash
		b, err := jsonLine(r)
		if err != nil {
			t.Fatalf("encode line: %v", err)
		}
		out = append(out, b)
	}
	return out
}

func TestReopenContinuesChainAndCutsTornLine(t *testing.T) {
	path, head := writeTrail(t, 5)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open file: %v", err)
	}
	if _, err := f.WriteString(`{"seq":6,"time":`); err != nil {
		t.Fatalf("write a torn line: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after a torn line: %v", err)
	}
	l, err := Open(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if l.Head() != head {
		t.Fatalf("head after reopen = %+v, want %+v", l.Head(), head)
	}
	if err := l.AppendSync(context.Background(), Record{Principal: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	res, err := Verify(path)
	if err != nil || !res.OK || res.Records != 6 {
		t.Fatalf("Verify = %+v %+v, %v", res, res.Problem, err)
	}
	var got []string
	if err := Read(path, Filter{Principal: "bob"}, func(r Record) bool { got = append(got, r.Principal); return true }); err != nil {
		t.Fatalf("Read(principal bob): %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Read(principal bob) = %v", got)
	}
	if err := l.Append(Record{}); err != ErrClosed {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestFilter(t *testing.T) {
	r := Record{Time: time.Unix(100, 0), Principal: "a", Object: "/secrets/db", Outcome: "denied"}
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Since: time.Unix(101, 0)}, false},
		{Filter{Until: time.Unix(100, 0)}, false},
		{Filter{Principal: "b"}, false},
		{Filter{Object: "/secrets/"}, true},
		{Filter{Object: "/secrets/d"}, false},
		{Filter{Object: "/secrets/db", Outcome: "denied"}, true},
	} {
		if got := tc.f.Match(r); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func hashAt(t *testing.T, ls []string, i int) string {
	path := filepath.Join(t.TempDir(), "x")
	save(t, path, []string{ls[i]})
	var h string
	if err := Read(path, Filter{}, func(r Record) bool { h = r.Hash; return false }); err != nil {
		t.Fatalf("read record %d: %v", i, err)
	}
	return h
}

func TestReopenKeepsADamagedRecord(t *testing.T) {
	path, _ := writeTrail(t, 5)
	ls := lines(t, path)
	ls[2] = "{damaged\n"
	save(t, path, ls)
	l, err := Open(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendSync(context.Background(), Record{Principal: "bob"}); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := len(lines(t, path)); got != 6 {
		t.Fatalf("lines after reopen = %d, want 6 (nothing cut)", got)
	}
	res, err := Verify(path)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.OK || res.Problem == nil || res.Problem.Seq != 3 {
		t.Fatalf("Verify = %+v %+v, want record 3 named", res, res.Problem)
	}
}

// jsonLine encodes a record as one line of the trail.
func jsonLine(r Record) (string, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return string(data) + "\n", nil
}

func TestSegments(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenSegmented(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.AppendSync(context.Background(), Record{Principal: "alice", Object: "/secrets/db", Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	head := l.Head()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	segs, err := segments(dir)
	if err != nil {
		t.Fatalf("list segments: %v", err)
	}
	if len(segs) < 3 {
		t.Fatalf("segments: %v, want several of 4 KiB", segs)
	}
	res, err := VerifyTrail(dir, head)
	if err != nil || !res.OK || res.Records != 100 || res.Start != 0 {
		t.Fatalf("VerifyTrail = %+v %+v, %v", res, res.Problem, err)
	}
	n := 0
	if err := ReadTrail(dir, Filter{}, func(Record) bool { n++; return true }); err != nil {
		t.Fatalf("ReadTrail: %v", err)
	}
	if n != 100 {
		t.Fatalf("ReadTrail read %d records, want 100", n)
	}
	// A check from a late record reads only the files that hold it on.
	if res, err := VerifyTrailFrom(dir, head.Seq-2, head); err != nil || !res.OK || res.Records >= 100 {
		t.Fatalf("VerifyTrailFrom = %+v %+v, %v", res, res.Problem, err)
	}
	// Reopening with an empty current file goes on from the last segment.
	l, err = OpenSegmented(dir, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if l.Head() != head {
		t.Fatalf("head after reopen %+v, want %+v", l.Head(), head)
	}
	if err := l.AppendSync(context.Background(), Record{Principal: "bob"}); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Retention: the oldest segment removed is allowed, and said.
	if err := os.Remove(segs[0]); err != nil {
		t.Fatalf("remove the first segment: %v", err)
	}
	res, err = VerifyTrail(dir)
	if err != nil || !res.OK || res.Start <= 1 {
		t.Fatalf("VerifyTrail without the first segment = %+v %+v, %v", res, res.Problem, err)
	}
	// A segment removed from the middle is not.
	if len(segs) < 4 {
		t.Fatalf("need 4 segments, have %d", len(segs))
	}
	if err := os.Remove(segs[2]); err != nil {
		t.Fatalf("remove a middle segment: %v", err)
	}
	res, err = VerifyTrail(dir)
	if err != nil || res.OK || res.Problem == nil || !strings.Contains(res.Problem.Reason, "missing") {
		t.Fatalf("VerifyTrail without a middle segment = %+v %+v, %v", res, res.Problem, err)
	}
	// An edit names its file.
	ls := lines(t, segs[3])
	ls[1] = strings.Replace(ls[1], `"principal":"alice"`, `"principal":"mallo"`, 1)
	save(t, segs[3], ls)
	res, err = verifyFiles([]string{segs[1], segs[3], filepath.Join(dir, FileName)}, nil, true)
	if err != nil || res.OK || res.Problem == nil || res.Problem.File != filepath.Base(segs[3]) || res.Problem.Line != 1 {
		t.Fatalf("gap before an edited segment: %+v %+v, %v", res, res.Problem, err)
	}
	res, err = verifyFiles([]string{segs[3], filepath.Join(dir, FileName)}, nil, true)
	if err != nil || res.OK || res.Problem == nil || res.Problem.File != filepath.Base(segs[3]) || res.Problem.Line != 2 {
		t.Fatalf("edited segment: %+v %+v, %v", res, res.Problem, err)
	}
}
