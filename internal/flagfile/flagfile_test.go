package flagfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/yamlfile"
	"github.com/spf13/pflag"
)

// vars are the values of testFlags' flags.
type vars struct {
	listen  string
	timeout time.Duration
	count   int
	limit   uint64
	ui      bool
	tags    []string
	secret  string
	config  string
}

// testFlags is a flag set with one flag of each kind the tests need.
func testFlags(v *vars) *pflag.FlagSet {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.StringVar(&v.listen, "listen", "127.0.0.1:8443", "")
	fs.DurationVar(&v.timeout, "raft-timeout", time.Second, "")
	fs.IntVar(&v.count, "max-requests", 64, "")
	fs.Uint64Var(&v.limit, "snapshot-threshold", 0, "")
	fs.BoolVar(&v.ui, "ui", true, "")
	fs.StringSliceVar(&v.tags, "tags", nil, "")
	fs.StringVar(&v.secret, "join-token", "", "")
	fs.StringVar(&v.config, "config", "", "")
	return fs
}

var testOpts = Options{
	Refused: map[string]string{
		"join-token": "a secret does not belong in this file: set CERTVAULT_JOIN_TOKEN",
		"config":     "names this file; give it on the command line",
	},
	Help: "test --help",
}

func TestApplySetsFlags(t *testing.T) {
	var v vars
	fs := testFlags(&v)
	file := "# a comment\nlisten: 10.0.0.1:8443\nraft-timeout: 2s\nmax-requests: 10\nsnapshot-threshold: 100\nui: false\ntags: [a, b]\n"
	origin, err := Apply(fs, []byte(file), "f.yaml", testOpts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := vars{listen: v.listen, timeout: v.timeout, count: v.count, limit: v.limit, ui: v.ui, tags: v.tags}
	want := vars{listen: "10.0.0.1:8443", timeout: 2 * time.Second, count: 10, limit: 100, ui: false, tags: []string{"a", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	wantLines := map[string]int{"listen": 2, "raft-timeout": 3, "max-requests": 4, "snapshot-threshold": 5, "ui": 6, "tags": 7}
	if !reflect.DeepEqual(origin.Lines, wantLines) {
		t.Errorf("lines: got %v, want %v", origin.Lines, wantLines)
	}
	if !fs.Changed("listen") {
		t.Error("listen set from the file is not Changed")
	}
}

func TestCommandLineWins(t *testing.T) {
	var v vars
	fs := testFlags(&v)
	if err := fs.Parse([]string{"--listen", "127.0.0.2:1", "--ui=true"}); err != nil {
		t.Fatalf("parse: %v", err)
	}
	origin, err := Apply(fs, []byte("listen: 10.0.0.1:8443\nui: false\nraft-timeout: 3s\n"), "f.yaml", testOpts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if v.listen != "127.0.0.2:1" || !v.ui {
		t.Errorf("listen %q ui %v: want the command line's 127.0.0.2:1 and true", v.listen, v.ui)
	}
	if v.timeout != 3*time.Second {
		t.Errorf("raft-timeout %v: want the file's 3s", v.timeout)
	}
	if origin.Line("listen") != 0 || origin.Line("raft-timeout") != 3 {
		t.Errorf("lines %v: want raft-timeout from line 3 and listen not from the file", origin.Lines)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, file := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		var v vars
		if _, err := Apply(testFlags(&v), []byte(file), "f.yaml", testOpts); err != nil {
			t.Errorf("%q: %v", file, err)
		}
		if v.listen != "127.0.0.1:8443" {
			t.Errorf("%q changed listen to %q", file, v.listen)
		}
	}
}

// TestProblems: each bad file is refused with its problems on their
// lines, and (for problems found before any value is set) sets nothing.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string // each problem's "LINE: ... MESSAGE" prefix pieces, in order
	}{
		{"unknown key", "listen: a:1\nlistne: b:2\n", []string{`f.yaml:2: listne: unknown key (did you mean "listen"?); the keys are the flags of 'test --help'`}},
		{"underscores", "raft_timeout: 2s\n", []string{`f.yaml:1: raft_timeout: unknown key (did you mean "raft-timeout"?)`}},
		{"dashes", "--listen: a:1\n", []string{`f.yaml:1: --listen: unknown key (did you mean "listen"?)`}},
		{"bad duration", "ui: true\n\nraft-timeout: 5 seconds\n", []string{`f.yaml:3: raft-timeout "5 seconds": not a duration: write a number with a unit`}},
		{"bad int", "max-requests: many\n", []string{`f.yaml:1: max-requests "many": not a whole number, like 64`}},
		{"negative uint", "snapshot-threshold: -1\n", []string{`f.yaml:1: snapshot-threshold "-1": not a whole number of zero or more`}},
		{"bad bool", "ui: maybe\n", []string{`f.yaml:1: ui "maybe": not true or false`}},
		{"twice", "listen: a:1\nui: true\nlisten: b:2\n", []string{`f.yaml:3: listen: set twice (first on line 1): keep one`}},
		{"refused secret", "join-token: cvj.x.y\n", []string{`f.yaml:1: join-token: a secret does not belong in this file`}},
		{"empty value", "listen:\n", []string{`f.yaml:1: listen: has no value: give one, or remove the line for the default (127.0.0.1:8443)`}},
		{"list for one value", "listen: [a, b]\n", []string{`f.yaml:1: listen: must be a single value (a string), not a list`}},
		{"not a mapping", "- listen\n", []string{`f.yaml:1: the file must be a mapping of keys to values`}},
		{"syntax", "listen: a:1\n  ui: [\n", []string{`f.yaml:2: not valid YAML:`}},
		{"tabs", "listen: a\n\tui: true\n", []string{`f.yaml:2: not valid YAML:`}},
		{"merge", "base: &b {listen: a}\n<<: *b\n", []string{`f.yaml:1: base: unknown key`, `f.yaml:2: a key must be a flag's name, like listen, not a merge (<<)`}},
		{"several", "ui: maybe\nnope: 1\nraft-timeout: x\n", []string{`f.yaml:2: nope: unknown key`}},
		{"several values", "ui: maybe\nraft-timeout: x\n", []string{`f.yaml:1: ui "maybe": not true or false`, `f.yaml:2: raft-timeout "x": not a duration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v vars
			_, err := Apply(testFlags(&v), []byte(tc.file), "f.yaml", testOpts)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error wrapping ErrInvalid", err)
			}
			var e *yamlfile.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T, want *yamlfile.Error", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d: got %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestNothingSetOnKeyProblems: a file with an unknown key changes no flag,
// not even those before the bad key.
func TestNothingSetOnKeyProblems(t *testing.T) {
	var v vars
	fs := testFlags(&v)
	if _, err := Apply(fs, []byte("listen: 10.9.9.9:1\nbogus: 1\n"), "f.yaml", testOpts); err == nil {
		t.Fatal("a file with an unknown key was accepted")
	}
	if v.listen != "127.0.0.1:8443" || fs.Changed("listen") {
		t.Errorf("listen %q (changed %v) after a refused file, want the default untouched", v.listen, fs.Changed("listen"))
	}
}

func TestKeys(t *testing.T) {
	var v vars
	got := Keys(testFlags(&v), testOpts)
	want := []string{"listen", "max-requests", "raft-timeout", "snapshot-threshold", "tags", "ui"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
