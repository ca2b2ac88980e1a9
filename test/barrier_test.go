package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// TestBarrierNoPlaintextOnDisk writes known high-entropy secrets to a
// three-node cluster that snapshots and compacts its raft log often, then
// searches every file under every node's data directory for the values in
// plaintext, base64 (standard and URL, every alignment) and hex. Raft's
// log, its snapshots and the node files may hold ciphertext only.
func TestBarrierNoPlaintextOnDisk(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{ExtraArgs: []string{
		"--snapshot-threshold", "64", "--trailing-logs", "32", "--snapshot-interval", "100ms",
		// The logs must not carry the secret either, even at debug level.
		"--log-level", "debug",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	leader := c.Leader()
	cl := c.Client(leader)

	const name = "plaintext-canary"
	put := func(name, value string) string {
		t.Helper()
		testcluster.KnownSecret(value)
		var resp struct {
			ID string `json:"id"`
		}
		if err := cl.Do(ctx, http.MethodPut, "/secrets/"+name, map[string]string{"value": value}, &resp); err != nil {
			t.Fatalf("set secret %s: %v", name, err)
		}
		return resp.ID[strings.LastIndexByte(resp.ID, '/')+1:]
	}

	// Three versions of the canary before the filler, so that they end up
	// in raft snapshots, and one after, so that it is in the raft log too.
	canaries := map[string]string{} // version -> value
	for range 3 {
		v := ptCanary(t)
		canaries[put(name, v)] = v
	}

	// Enough entries to pass the snapshot threshold on every node.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 12 {
				if err := cl.Do(ctx, http.MethodPut, fmt.Sprintf("/secrets/filler-%d-%d", w, i), map[string]string{"value": "filler"}, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("filler write: %v", err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := ptNodesWithoutSnapshot(c)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no raft snapshot (raft/snapshots/*/state.bin) on %v within 30s", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	last := ptCanary(t)
	lastVersion := put(name, last)
	canaries[lastVersion] = last

	// The values were stored: every node serves every version, and the
	// current one is the last.
	for _, n := range c.Nodes {
		ncl := c.Client(n)
		for version, want := range canaries {
			var got struct {
				Value string `json:"value"`
			}
			if err := ncl.Do(ctx, http.MethodGet, "/secrets/"+name+"/"+version, nil, &got); err != nil {
				t.Fatalf("%s: get %s/%s: %v", n.ID, name, version, err)
			}
			if got.Value != want {
				t.Fatalf("%s: %s/%s: got value %q, want %q", n.ID, name, version, got.Value, want)
			}
		}
		var cur struct {
			Value string `json:"value"`
		}
		if err := ncl.Do(ctx, http.MethodGet, "/secrets/"+url.PathEscape(name), nil, &cur); err != nil {
			t.Fatalf("%s: get %s: %v", n.ID, name, err)
		}
		if cur.Value != last {
			t.Fatalf("%s: current value of %s: got %q, want the last version's %q", n.ID, name, cur.Value, last)
		}
	}

	// Stop cleanly, leader first so that leadership moves instead of being
	// lost, and with it whatever the nodes flush on the way out.
	leader.Stop()
	for _, n := range c.Nodes {
		n.Stop()
	}

	var needles []ptNeedle
	for _, v := range canaries {
		needles = append(needles, ptNeedles(v)...)
	}
	// A positive control: the storage key of a value (plaintext by design)
	// must be found, or the search proves nothing.
	control := []byte("val/secrets/" + name + "/" + lastVersion)
	scanned, controlSeen := 0, false
	err := filepath.WalkDir(c.Base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		controlSeen = controlSeen || bytes.Contains(data, control)
		for _, nd := range needles {
			if i := bytes.Index(data, nd.b); i >= 0 {
				rel, err := filepath.Rel(c.Base, path)
				if err != nil {
					t.Fatalf("relative path: %v", err)
				}
				t.Errorf("%s holds a secret value as %s at offset %d", rel, nd.what, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk data directories: %v", err)
	}
	if !controlSeen {
		t.Fatalf("no file holds the storage key %q: the search did not see the raft data", control)
	}
	t.Logf("searched %d files for %d encodings of %d secret values", scanned, len(needles), len(canaries))

	for _, n := range c.Nodes {
		log := n.Log()
		for _, nd := range needles {
			if bytes.Contains([]byte(log), nd.b) {
				t.Errorf("the log of %s holds a secret value as %s", n.ID, nd.what)
			}
		}
	}

	// Files that hold keys or credentials are readable by the vault's user
	// only.
	private := []string{
		filepath.Join(c.Nodes[0].Dir, "seal.key"),
		filepath.Join(c.Nodes[0].Dir, "root-token"),
	}
	for _, n := range c.Nodes {
		private = append(private, filepath.Join(n.Dir, "tls", "node.key"))
	}
	for _, p := range private {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			rel, err := filepath.Rel(c.Base, p)
			if err != nil {
				t.Fatalf("relative path: %v", err)
			}
			t.Errorf("%s: got mode %#o, want 0600", rel, got)
		}
	}
}

// ptCanary returns a secret value no file holds by chance.
func ptCanary(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// ptNeedle is one encoding of a secret value to search for.
type ptNeedle struct {
	what string
	b    []byte
}

// ptNeedles returns v in plaintext, hex, and base64 (standard and URL) at
// each of the three alignments v can have inside a longer encoded stream:
// for alignment k the value is encoded after k filler bytes and the
// groups that mix in other bytes are cut off.
func ptNeedles(v string) []ptNeedle {
	out := []ptNeedle{
		{"plaintext", []byte(v)},
		{"hex", []byte(hex.EncodeToString([]byte(v)))},
		{"HEX", []byte(strings.ToUpper(hex.EncodeToString([]byte(v))))},
	}
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		for k := range 3 {
			s := enc.e.EncodeToString(append(make([]byte, k), v...))
			if k > 0 {
				s = s[4:] // the first group mixes in filler
			}
			s = s[:len(s)-4] // the last group may mix in what follows
			out = append(out, ptNeedle{fmt.Sprintf("%s (alignment %d)", enc.name, k), []byte(s)})
		}
	}
	return out
}

// ptNodesWithoutSnapshot lists the nodes that have no raft snapshot file
// yet.
func ptNodesWithoutSnapshot(c *testcluster.Cluster) []string {
	var missing []string
	for _, n := range c.Nodes {
		m, _ := filepath.Glob(filepath.Join(n.Dir, "raft", "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			missing = append(missing, n.ID)
		}
	}
	return missing
}
