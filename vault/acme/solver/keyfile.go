package solver

import (
	"fmt"
	"regexp"
	"strings"
)

// ParseTSIGKey parses a BIND key file as tsig-keygen and ddns-confgen write
// it:
//
//	key "name" {
//		algorithm hmac-sha256;
//		secret "base64";
//	};
//
// It accepts hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 and
// hmac-sha512, quoted or bare names and values, #, // and /* */ comments
// and any layout of whitespace. Other top-level statements (ddns-confgen's
// update-policy example, a server or zone block) are skipped; the data must
// hold exactly one key statement. The returned key's Algorithm is the
// lowercase name without the final dot ("hmac-sha256").
//
// Errors wrap ErrBadKeyFile, give line numbers and never contain the secret.
func ParseTSIGKey(data []byte) (*TSIGKey, error) {
	toks, err := lexNamedConf(string(data))
	if err != nil {
		return nil, err
	}
	var keys []*TSIGKey
	depth := 0
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case depth == 0 && t.kind == tokWord && strings.EqualFold(t.text, "key"):
			k, next, err := parseKeyStatement(toks, i)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
			i = next
			continue
		case t.kind == tokPunct && t.text == "{":
			depth++
		case t.kind == tokPunct && t.text == "}":
			if depth == 0 {
				return nil, fmt.Errorf("%w: line %d: a } closes nothing", ErrBadKeyFile, t.line)
			}
			depth--
		}
		i++
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("%w: no key statement in the data", ErrBadKeyFile)
	case 1:
		return keys[0], nil
	default:
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = fmt.Sprintf("%q", k.Name)
		}
		return nil, fmt.Errorf("%w: %d key statements (%s): give a file with only the key for this zone", ErrBadKeyFile, len(keys), strings.Join(names, ", "))
	}
}

// safeWord is what an error may quote of a value that is not the key name:
// short enough and shaped like an algorithm name, never like a secret.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9.-]{1,24}$`)

// parseKeyStatement parses `key NAME { ... };` starting at toks[i] ("key")
// and returns the index after it.
func parseKeyStatement(toks []token, i int) (*TSIGKey, int, error) {
	keyLine := toks[i].line
	at := func(j int) token {
		if j < len(toks) {
			return toks[j]
		}
		return token{kind: tokEOF, line: toks[len(toks)-1].line}
	}
	name := at(i + 1)
	if name.kind != tokWord && name.kind != tokString {
		return nil, 0, fmt.Errorf("%w: line %d: key has no name (want key \"name\" { ... };)", ErrBadKeyFile, keyLine)
	}
	k := &TSIGKey{Name: strings.TrimSuffix(name.text, ".")}
	if k.Name == "" {
		return nil, 0, fmt.Errorf("%w: line %d: the key name is empty", ErrBadKeyFile, name.line)
	}
	if t := at(i + 2); t.kind != tokPunct || t.text != "{" {
		return nil, 0, fmt.Errorf("%w: line %d: want { after key %q", ErrBadKeyFile, t.line, k.Name)
	}
	var haveAlg, haveSecret bool
	j := i + 3
	for {
		stmt := at(j)
		if stmt.kind == tokPunct && stmt.text == "}" {
			j++
			break
		}
		if stmt.kind == tokEOF {
			return nil, 0, fmt.Errorf("%w: key %q (line %d) is not closed with };", ErrBadKeyFile, k.Name, keyLine)
		}
		if stmt.kind != tokWord {
			return nil, 0, fmt.Errorf("%w: line %d: key %q: want a statement (algorithm or secret)", ErrBadKeyFile, stmt.line, k.Name)
		}
		word := strings.ToLower(stmt.text)
		val, end := at(j+1), at(j+2)
		switch word {
		case "algorithm", "secret":
		default:
			// Do not quote it: a misplaced secret would be quoted.
			return nil, 0, fmt.Errorf("%w: line %d: key %q: unknown statement (a key holds only algorithm and secret)", ErrBadKeyFile, stmt.line, k.Name)
		}
		if val.kind != tokWord && val.kind != tokString {
			return nil, 0, fmt.Errorf("%w: line %d: key %q: %s has no value", ErrBadKeyFile, stmt.line, k.Name, word)
		}
		if end.kind != tokPunct || end.text != ";" {
			return nil, 0, fmt.Errorf("%w: line %d: key %q: want ; after the %s value", ErrBadKeyFile, val.line, k.Name, word)
		}
		switch word {
		case "algorithm":
			if haveAlg {
				return nil, 0, fmt.Errorf("%w: line %d: key %q has two algorithm statements", ErrBadKeyFile, stmt.line, k.Name)
			}
			haveAlg = true
			a := strings.TrimSuffix(strings.ToLower(val.text), ".")
			if _, ok := tsigAlgorithms[a]; !ok {
				shown := "this one"
				if safeWord.MatchString(val.text) {
					shown = fmt.Sprintf("%q", val.text)
				}
				return nil, 0, fmt.Errorf("%w: line %d: key %q: algorithm %s is not supported: use hmac-sha256 (or hmac-sha1/224/384/512)", ErrBadKeyFile, val.line, k.Name, shown)
			}
			k.Algorithm = a
		case "secret":
			if haveSecret {
				return nil, 0, fmt.Errorf("%w: line %d: key %q has two secret statements", ErrBadKeyFile, stmt.line, k.Name)
			}
			haveSecret = true
			s, ok := normalSecret(val.text)
			if !ok {
				return nil, 0, fmt.Errorf("%w: line %d: key %q: the secret is not standard base64", ErrBadKeyFile, val.line, k.Name)
			}
			k.Secret = s
		}
		j += 3
	}
	if t := at(j); t.kind == tokPunct && t.text == ";" {
		j++
	}
	if !haveAlg {
		return nil, 0, fmt.Errorf("%w: key %q (line %d) has no algorithm statement", ErrBadKeyFile, k.Name, keyLine)
	}
	if !haveSecret {
		return nil, 0, fmt.Errorf("%w: key %q (line %d) has no secret statement", ErrBadKeyFile, k.Name, keyLine)
	}
	return k, j, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	text string
	line int
}

// lexNamedConf splits named.conf syntax into words, quoted strings and
// the punctuation { } ;, dropping comments. Its errors give line numbers
// only.
func lexNamedConf(s string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%w: line %d: a /* comment is not closed", ErrBadKeyFile, line)
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{kind: tokPunct, text: string(c), line: line})
			i++
		case c == '"':
			start := line
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("%w: line %d: a quoted string is not closed", ErrBadKeyFile, start)
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				if s[i] == '\n' {
					line++
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{kind: tokString, text: b.String(), line: start})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\f\v{};\"#", rune(s[j])) {
				j++
			}
			toks = append(toks, token{kind: tokWord, text: s[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}
