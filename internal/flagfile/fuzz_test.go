package flagfile

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/certvault/certvault/internal/yamlfile"
)

// FuzzFlagFile feeds configuration files to Apply. Properties: it answers
// the same twice; a refusal is a *yamlfile.Error wrapping ErrInvalid whose
// problems have lines in the file; an accepted file set only flags that
// exist and are not refused, each from a line of the file, and changed
// nothing else.
func FuzzFlagFile(f *testing.F) {
	f.Add([]byte("listen: 10.0.0.1:8443\nraft-timeout: 2s\nmax-requests: 10\nsnapshot-threshold: 100\nui: false\ntags: [a, b]\n"))
	f.Add([]byte("listen: &l 10.0.0.1:8443\ntags: [*l, b]\nui: !!bool true\n"))
	f.Add([]byte("join-token: x\nconfig: /etc/x\nlisten:\nlisten: y\n"))
	f.Add([]byte("raft-timeout: 5 seconds\nmax-requests: 1e3\nsnapshot-threshold: -1\nui: yes\n"))
	f.Add([]byte("<<: {listen: a}\n? [a]\n: b\n\tui: true\n---\nx: 1\n"))
	f.Add([]byte("\r\nlisten: a\rui: false\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		apply := func() (vars, Origin, error) {
			var v vars
			origin, err := Apply(testFlags(&v), data, "f.yaml", testOpts)
			return v, origin, err
		}
		v, origin, err := apply()
		v2, origin2, err2 := apply()
		if fmt.Sprint(err) != fmt.Sprint(err2) || err == nil && (!reflect.DeepEqual(v, v2) || !reflect.DeepEqual(origin, origin2)) {
			t.Fatalf("two applies differ:\n%+v %v %v\n%+v %v %v", v, origin, err, v2, origin2, err2)
		}
		// YAML breaks lines at \r\n, \r and \n alike.
		s := string(data)
		lines := strings.Count(s, "\n") + strings.Count(s, "\r") - strings.Count(s, "\r\n") + 1
		if err != nil {
			var e *yamlfile.Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || len(e.Problems) == 0 {
				t.Fatalf("refused with %v (%T), want a *yamlfile.Error wrapping ErrInvalid with problems", err, err)
			}
			for _, p := range e.Problems {
				if p.Line < 1 || p.Line > lines {
					t.Fatalf("problem %+v is on line %d of a %d-line file", p, p.Line, lines)
				}
			}
			return
		}
		var def vars
		fs := testFlags(&def)
		for name, line := range origin.Lines {
			if fs.Lookup(name) == nil {
				t.Fatalf("set %q, which is no flag", name)
			}
			if _, refused := testOpts.Refused[name]; refused {
				t.Fatalf("set the refused flag %q", name)
			}
			if line < 1 || line > lines {
				t.Fatalf("%q set from line %d of a %d-line file", name, line, lines)
			}
		}
		if v.secret != "" || v.config != "" {
			t.Fatalf("an accepted file set a refused flag: %+v", v)
		}
		if _, ok := origin.Lines["listen"]; !ok && v.listen != def.listen {
			t.Fatalf("listen changed to %q without a line", v.listen)
		}
	})
}
