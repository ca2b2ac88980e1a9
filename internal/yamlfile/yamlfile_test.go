package yamlfile

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodePinsSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		line       int
		msg        string
	}{
		{"unclosed list", "a: 1\nb: 2\nc: [\n", 3, "not valid YAML:"},
		{"tab", "a:\n\tb: 1\n", 2, "indent with spaces"},
		{"second document", "a: 1\n---\nb: 2\n", 2, "a second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p := Decode([]byte(tc.data))
			if p == nil {
				t.Fatal("no problem reported")
			}
			if p.Line != tc.line || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("got line %d %q, want line %d with %q", p.Line, p.Message, tc.line, tc.msg)
			}
		})
	}
	for _, empty := range []string{"", "# comment\n"} {
		if n, p := Decode([]byte(empty)); n != nil || p != nil {
			t.Errorf("Decode(%q) = %v, %v; want nothing", empty, n, p)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	sentinel := errors.New("invalid")
	err := &Error{Path: "f.yaml", Invalid: sentinel, Problems: []Problem{
		{Line: 2, Field: "listen", Value: "x", Message: "bad"},
		{Line: 5, Message: "whole file"},
	}}
	want := "f.yaml:2: listen \"x\": bad\nf.yaml:5: whole file"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, sentinel) {
		t.Error("Error does not unwrap to its Invalid")
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"listen", "raft-listen", "data"}
	for key, want := range map[string]string{"lisen": "listen", "LISTEN": "listen", "raft_listen": "raft-listen", "nothing-like-it": ""} {
		if got := Suggest(key, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
