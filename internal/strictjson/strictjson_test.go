package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	for _, tc := range []struct {
		name string
		in   string
		want error // nil: accepted
		// path is where the error must say the problem is.
		path string
		// msg is a word the message must contain.
		msg string
	}{
		{"object", `{"value":"v","tags":{"a":"1","b":"2"},"attributes":{"enabled":true,"nbf":1}}`, nil, "", ""},
		{"same name in different objects", `{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, nil, "", ""},
		{"surrogate pair", `{"v":"\ud83d\ude00 and \u00e9"}`, nil, "", ""},
		{"escaped backslash before u", `{"v":"\\ud800"}`, nil, "", ""},
		{"UTF-8 text", `{"v":"été ✓ 😀"}`, nil, "", ""},
		{"huge number", `{"n":1e400}`, nil, "", ""},
		{"nesting at the limit", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), nil, "", ""},

		{"duplicate at top", `{"value":"a","value":"b"}`, ErrDuplicate, "", `"value"`},
		{"duplicate ignoring case", `{"value":"a","Value":"b"}`, ErrDuplicate, "", `"Value"`},
		{"duplicate by escape", `{"value":"a","valu\u0065":"b"}`, ErrDuplicate, "", `"value"`},
		{"duplicate nested", `{"attributes":{"enabled":true,"exp":1,"enabled":false}}`, ErrDuplicate, "attributes", `"enabled"`},
		{"duplicate in array element", `{"x":[{"a":1},{"b":1,"b":2}]}`, ErrDuplicate, "x[1]", `"b"`},
		{"duplicate tag", `{"tags":{"env":"prod","ENV":"dev"}}`, ErrDuplicate, "tags", `"ENV"`},
		{"duplicate with Kelvin sign", "{\"k\":1,\"\u212a\":2}", ErrDuplicate, "", "same member"},

		{"invalid UTF-8 in value", "{\"tags\":{\"env\":\"pr\xffod\"}}", ErrInvalidUnicode, "tags.env", "UTF-8"},
		{"invalid UTF-8 in name", "{\"tags\":{\"e\xc3\":\"x\"}}", ErrInvalidUnicode, "tags", "member name"},
		{"overlong encoding", "{\"v\":\"\xc0\xaf\"}", ErrInvalidUnicode, "v", "UTF-8"},
		{"lone high surrogate", `{"v":"a\ud800b"}`, ErrInvalidUnicode, "v", `\ud800`},
		{"high surrogate at end", `{"v":"\ud800"}`, ErrInvalidUnicode, "v", `\ud800`},
		{"lone low surrogate", `{"v":["ok","\udc00"]}`, ErrInvalidUnicode, "v[1]", `\udc00`},
		{"high then non-surrogate", `{"v":"\ud800\u0041"}`, ErrInvalidUnicode, "v", `\ud800`},

		{"too deep", deep, ErrTooDeep, strings.Repeat("[0]", MaxDepth), "deeper"},
		{"trailing data", `{"a":1} {"a":2}`, ErrSyntax, "", "after"},
		{"truncated", `{"a":`, ErrSyntax, "a", "invalid JSON"},
		{"empty", ``, ErrSyntax, "", "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check(%q): got %v, want nil", tc.in, err)
				}
				return
			}
			var e *Error
			if !errors.Is(err, tc.want) || !errors.As(err, &e) {
				t.Fatalf("Check(%q): got %v, want an *Error wrapping %v", tc.in, err, tc.want)
			}
			if e.Path != tc.path || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Check(%q): got path %q, message %q; want path %q and a message mentioning %q", tc.in, e.Path, err.Error(), tc.path, tc.msg)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	var v struct {
		Value string `json:"value"`
	}
	if err := Unmarshal([]byte(`{"value":"a","VALUE":"b"}`), &v); !errors.Is(err, ErrDuplicate) || v.Value != "" {
		t.Errorf("Unmarshal of a duplicate: got %v and value %q, want ErrDuplicate and nothing decoded", err, v.Value)
	}
	if err := Unmarshal([]byte(`{"value":"é"}`), &v); err != nil || v.Value != "é" {
		t.Errorf("Unmarshal: got %v, %q; want nil, %q", err, v.Value, "é")
	}
	if err := Unmarshal([]byte(`{"value":1}`), &v); err == nil {
		t.Errorf("Unmarshal of a number into a string: got nil, want the type error")
	}
}

// FuzzCheck checks that Check never accepts what encoding/json refuses,
// and that what it accepts decodes to strings that are valid UTF-8
// without the replacement character encoding/json substitutes, unless the
// input holds that character itself.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":1,"A":2}`, `["\ud800"]`, `{"a":{"b":[1,"\u00e9"]}}`, "\"\xff\"", `{"a":"\\u0041"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data) != nil {
			return
		}
		// Numbers decode as json.Number: Check judges syntax, and a
		// number too large for a float64 is valid JSON (the typed decode
		// after Check refuses it with its own error).
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("Check accepted %q, which encoding/json refuses: %v", data, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("Check accepted %q, which has more after its value (%v)", data, err)
		}
		hasRune := strings.ContainsRune(string(data), utf8.RuneError) || strings.Contains(strings.ToLower(string(data)), `\ufffd`)
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				if !hasRune && strings.ContainsRune(x, utf8.RuneError) {
					t.Fatalf("Check accepted %q, which decodes to %q with a replacement character", data, x)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for k, e := range x {
					walk(k)
					walk(e)
				}
			}
		}
		walk(v)
	})
}
