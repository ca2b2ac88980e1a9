// Package strictjson checks JSON that comes from outside before it is
// decoded, for what encoding/json lets through silently: a member name
// given twice in one object (encoding/json keeps the last, and matches
// struct fields ignoring case, so "value" and "Value" are the same field),
// strings that are not valid UTF-8 or hold an unpaired UTF-16 surrogate
// escape (encoding/json turns both into U+FFFD), and nesting deeper than
// any request needs. It owns no types of the API and decodes nothing
// itself: Unmarshal checks, then calls encoding/json.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors; every error of Check wraps one of them in an *Error.
var (
	// ErrSyntax means the input is not one well-formed JSON value.
	ErrSyntax = errors.New("strictjson: not valid JSON")
	// ErrDuplicate means an object names a member twice (compared
	// ignoring case, as encoding/json matches struct fields).
	ErrDuplicate = errors.New("strictjson: duplicate member name")
	// ErrInvalidUnicode means a string or member name is not valid UTF-8
	// or holds an unpaired UTF-16 surrogate escape such as \ud800.
	ErrInvalidUnicode = errors.New("strictjson: invalid Unicode")
	// ErrTooDeep means objects and arrays nest deeper than MaxDepth.
	ErrTooDeep = errors.New("strictjson: nested too deeply")
)

// MaxDepth is how deeply objects and arrays may nest. The deepest body
// certvault takes (a certificate policy) nests four levels.
const MaxDepth = 64

// Error is a problem found by Check: what is wrong (Msg, safe to show to
// the sender: it quotes member names, never string values), where (Path,
// "" for the top level, else like x509_props.sans.dns_names[2]), and the
// sentinel it wraps.
type Error struct {
	Path string
	Msg  string
	Err  error
}

// Error returns the message with its place, e.g. `member "enabled" is
// given twice in attributes`.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg + " at the top level"
	}
	return e.Msg + " in " + e.Path
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// Unmarshal is json.Unmarshal after Check.
func Unmarshal(data []byte, v any) error {
	if err := Check(data); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	return nil
}

// Check reports the first problem of data as an *Error, or nil when data
// is one JSON value with unique member names (ignoring case) in every
// object, valid Unicode in every string and member name, and at most
// MaxDepth levels of nesting.
func Check(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a number too large for float64 is not our concern here
	c := &checker{dec: dec, data: data}
	if err := c.value("", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Msg: "unexpected data after the JSON value", Err: ErrSyntax}
	}
	return nil
}

type checker struct {
	dec  *json.Decoder
	data []byte
}

// token returns the next token and the raw bytes it came from (with any
// separator and space before it).
func (c *checker) token(path string) (json.Token, []byte, error) {
	start := c.dec.InputOffset()
	tok, err := c.dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, nil, &Error{Path: path, Msg: "invalid JSON (" + err.Error() + ")", Err: ErrSyntax}
	}
	return tok, c.data[start:c.dec.InputOffset()], nil
}

func (c *checker) value(path string, depth int) error {
	tok, raw, err := c.token(path)
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case string:
		if why := badUnicode(raw); why != "" {
			return &Error{Path: path, Msg: "a string value has " + why, Err: ErrInvalidUnicode}
		}
	case json.Delim:
		if depth >= MaxDepth {
			return &Error{Path: path, Msg: fmt.Sprintf("objects and arrays nest deeper than %d levels", MaxDepth), Err: ErrTooDeep}
		}
		if t == '[' {
			for i := 0; c.dec.More(); i++ {
				if err := c.value(path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
					return err
				}
			}
		} else {
			seen := map[string]string{}
			for c.dec.More() {
				ktok, kraw, err := c.token(path)
				if err != nil {
					return err
				}
				k, _ := ktok.(string) // the decoder allows only strings here
				if why := badUnicode(kraw); why != "" {
					return &Error{Path: path, Msg: "a member name has " + why, Err: ErrInvalidUnicode}
				}
				f := fold(k)
				if first, dup := seen[f]; dup {
					msg := fmt.Sprintf("member %q is given twice", k)
					if first != k {
						msg = fmt.Sprintf("members %q and %q are the same member (names are compared ignoring case)", first, k)
					}
					return &Error{Path: path, Msg: msg, Err: ErrDuplicate}
				}
				seen[f] = k
				if err := c.value(join(path, k), depth+1); err != nil {
					return err
				}
			}
		}
		if _, _, err := c.token(path); err != nil { // the closing delimiter
			return err
		}
	}
	return nil
}

// join appends a member name to a path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// fold maps s to one representative of the strings that equal it under
// Unicode simple case folding, the comparison encoding/json uses to match
// member names to struct fields (strings.EqualFold).
func fold(s string) string {
	var b strings.Builder
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// badUnicode says what is wrong with the raw bytes of one JSON string
// token (with the separator before it), or "" when nothing is: invalid
// UTF-8, or a \u escape of a UTF-16 surrogate that is not half of a pair.
func badUnicode(raw []byte) string {
	if !utf8.Valid(raw) {
		return "invalid UTF-8"
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character; the decoder has checked the syntax
		if i+4 >= len(raw) || raw[i] != 'u' {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xD800 && r < 0xDC00:
			// A high surrogate must be followed at once by a low one.
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return fmt.Sprintf(`an unpaired UTF-16 surrogate escape (\u%04x)`, r)
		case r >= 0xDC00 && r < 0xE000:
			return fmt.Sprintf(`an unpaired UTF-16 surrogate escape (\u%04x)`, r)
		}
	}
	return ""
}

// hex4 reads four hex digits; anything else reads as 0 (no surrogate).
func hex4(b []byte) rune {
	v, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		return 0
	}
	return rune(v)
}
