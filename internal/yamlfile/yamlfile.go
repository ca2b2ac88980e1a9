// Package yamlfile holds what certvault's hand-edited YAML configuration
// files share: decoding one document into a node tree with a syntax error
// pinned to the line that has the mistake, problems that name their file
// and line, and "did you mean" suggestions for unknown keys.
//
// It knows no configuration's keys: the agent's file (agent/config) and
// the server's (internal/flagfile) give their own meaning to the nodes.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong in a configuration file.
type Problem struct {
	// Line is the line of the file the problem is on, from 1.
	Line int
	// Field is where the problem is, like "certificates[0].mode", or
	// empty for the file as a whole.
	Field string
	// Value is the offending value as written, or empty.
	Value string
	// Message says what is wrong and what to write instead.
	Message string
}

// Format returns the problem as "PATH:LINE: FIELD "VALUE": MESSAGE".
func (p Problem) Format(path string) string {
	var b strings.Builder
	b.WriteString(path)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(p.Line))
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		if p.Value != "" {
			b.WriteByte(' ')
			b.WriteString(strconv.Quote(p.Value))
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is an invalid configuration file: all its problems, sorted by
// line. It wraps Invalid, the sentinel error of the package that read
// the file.
type Error struct {
	// Path is the file, as given to the parser.
	Path string
	// Problems are the problems found, sorted by line; never empty.
	Problems []Problem
	// Invalid is what Unwrap returns, e.g. the agent's
	// config.ErrInvalid; nil unwraps to nothing.
	Invalid error
}

// Error returns the problems one per line, each as
// `PATH:LINE: FIELD "VALUE": MESSAGE`.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Format(e.Path)
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns e.Invalid.
func (e *Error) Unwrap() error { return e.Invalid }

// lineRE matches the line number in a yaml.v3 syntax error.
var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Decode parses data as one YAML document and returns its root node (nil
// for an empty file), or a problem for a syntax error or a second
// document.
func Decode(data []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxProblem(err, data)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Problem{Line: max(extra.Line, 1), Message: `a second YAML document ("---") starts here: the file must be one document`}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxProblem(err, data)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// maxSearchLines bounds the search for the line of a syntax error.
const maxSearchLines = 2000

// syntaxProblem turns a yaml.v3 error into a problem with a line.
//
// yaml.v3 reports the line where the enclosing block starts, or no line
// at all, rather than the line with the mistake. So the line is the
// first one, from there on, at which the lines of the file up to it give
// the same error when parsed alone.
func syntaxProblem(err error, data []byte) *Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	reported := 0
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		reported, _ = strconv.Atoi(m[1]) // the pattern's digits; an overflow leaves 0, "no line"
		msg = m[2]
	}
	line := findErrorLine(data, err.Error(), max(reported, 1))
	switch {
	case line == 0:
		line = max(reported, 1)
	case reported > 0 && reported < line:
		msg += fmt.Sprintf(" (in the block that starts on line %d)", reported)
	}
	lines := strings.Split(string(data), "\n")
	if line <= len(lines) && strings.Contains(leadingSpace(lines[line-1]), "\t") {
		msg += " (YAML does not allow tabs for indentation: indent with spaces)"
	}
	return &Problem{Line: line, Message: "not valid YAML: " + msg}
}

// findErrorLine returns the first line from line from on at which the
// file's lines up to it give the error want, or 0.
func findErrorLine(data []byte, want string, from int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var prefix []byte
	for i, l := range lines {
		prefix = append(prefix, l...)
		if i+1 < from {
			continue
		}
		if i+1 >= from+maxSearchLines {
			return 0
		}
		dec := yaml.NewDecoder(bytes.NewReader(prefix))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			if err.Error() == want {
				return i + 1
			}
			break
		}
	}
	return 0
}

// leadingSpace returns the white space that s begins with.
func leadingSpace(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " \t"))]
}

// maxAliases bounds how many aliases Resolve follows.
const maxAliases = 100

// Resolve follows aliases (at most 100 of them) to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliases; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or a YAML null.
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// KindName names the kind of n for messages: "a mapping", "a list",
// "empty", or the value "x".
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// Suggest returns the key in known closest to key (case aside), if it
// is within two edits; else "".
func Suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
