// Package flagfile reads a command's configuration file whose keys are the
// command's own flags: a flat YAML mapping from a flag's long name (without
// its dashes) to the value the flag would take, such as
//
//	data: /var/lib/certvault
//	listen: 10.0.0.1:8443
//	raft-timeout: 2s
//	ui: false
//
// The keys come from the pflag.FlagSet itself, so a flag added to the
// command is a key of the file with no other change. Flags given on the
// command line win over the file. Unknown keys, keys set twice, and values
// that the flag does not take are problems that name their line (as the
// agent's configuration does, through internal/yamlfile).
//
// It only sets flags: what the values mean, and checks that involve
// several flags, stay with the command. It reads no file itself.
package flagfile

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/certvault/certvault/internal/yamlfile"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every error Apply returns: the error is a
// *yamlfile.Error listing the file's problems with their lines.
var ErrInvalid = errors.New("flagfile: invalid configuration file")

// Options tune Apply. The zero value lets the file set every flag.
type Options struct {
	// Refused are flags the file may not set, each with the reason the
	// problem gives when the file sets one (say, a secret whose place is
	// a file or the environment, or the flag that names the file).
	Refused map[string]string
	// Help says where the keys are listed, for the message about an
	// unknown key, e.g. "certvaultd --help". Empty says nothing.
	Help string
}

// Origin says where flags got their values from a file.
type Origin struct {
	// Path is the file, as given to Apply.
	Path string
	// Lines maps each flag the file set to the line of its value.
	Lines map[string]int
}

// Line returns the line of the file that set flag, or 0 when the file
// did not set it (the command line or the default did).
func (o Origin) Line(flag string) int { return o.Lines[flag] }

// Keys returns the keys a file may set for fs: every flag's long name but
// the refused ones, sorted.
func Keys(fs *pflag.FlagSet, opts Options) []string {
	var keys []string
	fs.VisitAll(func(f *pflag.Flag) {
		if _, refused := opts.Refused[f.Name]; !refused {
			keys = append(keys, f.Name)
		}
	})
	sort.Strings(keys)
	return keys
}

// setting is one key of the file and its value.
type setting struct {
	flag  *pflag.Flag
	value *yaml.Node
	line  int
}

// Apply reads data, the file at path (used only in messages), and sets
// every flag of fs that the file names and that was not set on the
// command line (fs.Changed). An empty file sets nothing.
//
// It first checks the whole file (syntax, that the root is a mapping,
// unknown, refused and repeated keys, lists given to flags that take one
// value) and sets nothing when that finds a problem; then it sets the
// values, and reports each one that its flag refuses (not a duration, not
// a whole number, not true or false). Either way the error is a
// *yamlfile.Error wrapping ErrInvalid with every problem, sorted by line,
// and fs must then not be used.
func Apply(fs *pflag.FlagSet, data []byte, path string, opts Options) (Origin, error) {
	origin := Origin{Path: path, Lines: map[string]int{}}
	root, prob := yamlfile.Decode(data)
	if prob != nil {
		return origin, &yamlfile.Error{Path: path, Problems: []yamlfile.Problem{*prob}, Invalid: ErrInvalid}
	}
	settings, probs := read(fs, root, opts)
	if len(probs) == 0 {
		for _, s := range settings {
			if fs.Changed(s.flag.Name) {
				continue // the command line wins
			}
			if p := set(fs, s); p != nil {
				probs = append(probs, *p)
				continue
			}
			origin.Lines[s.flag.Name] = s.line
		}
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return origin, &yamlfile.Error{Path: path, Problems: probs, Invalid: ErrInvalid}
	}
	return origin, nil
}

// read returns the settings of the mapping root, in file order, and the
// problems of its keys and the shape of its values.
func read(fs *pflag.FlagSet, root *yaml.Node, opts Options) ([]setting, []yamlfile.Problem) {
	if root == nil {
		return nil, nil
	}
	root = yamlfile.Resolve(root)
	if root.Kind != yaml.MappingNode {
		if yamlfile.IsNull(root) {
			return nil, nil
		}
		return nil, []yamlfile.Problem{{Line: max(root.Line, 1), Message: fmt.Sprintf("the file must be a mapping of keys to values, like \"listen: 127.0.0.1:8443\", not %s", yamlfile.KindName(root))}}
	}
	var out []setting
	var probs []yamlfile.Problem
	add := func(line int, field, format string, args ...any) {
		probs = append(probs, yamlfile.Problem{Line: max(line, 1), Field: field, Message: fmt.Sprintf(format, args...)})
	}
	first := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			add(k.Line, "", "a key must be a flag's name, like listen, not %s", describeKey(k))
			continue
		}
		name := k.Value
		if line, dup := first[name]; dup {
			add(k.Line, name, "set twice (first on line %d): keep one", line)
			continue
		}
		first[name] = k.Line
		if reason, refused := opts.Refused[name]; refused {
			add(k.Line, name, "%s", reason)
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			add(k.Line, name, "%s", unknown(name, fs, opts))
			continue
		}
		line := k.Line
		if r := yamlfile.Resolve(v); r != nil && r.Line >= k.Line {
			line = r.Line
		}
		if p := shape(f, v, line); p != nil {
			probs = append(probs, *p)
			continue
		}
		out = append(out, setting{flag: f, value: yamlfile.Resolve(v), line: line})
	}
	return out, probs
}

// describeKey names a key that is not a plain word.
func describeKey(k *yaml.Node) string {
	if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
		return "a merge (<<)"
	}
	return yamlfile.KindName(k)
}

// unknown is the message for a key that is no flag.
func unknown(name string, fs *pflag.FlagSet, opts Options) string {
	msg := "unknown key"
	if s := yamlfile.Suggest(strings.ReplaceAll(strings.TrimLeft(name, "-"), "_", "-"), Keys(fs, opts)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	if opts.Help != "" {
		msg += fmt.Sprintf("; the keys are the flags of '%s', without their dashes", opts.Help)
	}
	return msg
}

// shape checks that v is a value f can take: one value, or a list of
// values for a flag that takes a list.
func shape(f *pflag.Flag, v *yaml.Node, line int) *yamlfile.Problem {
	r := yamlfile.Resolve(v)
	_, isSlice := f.Value.(pflag.SliceValue)
	switch {
	case yamlfile.IsNull(r):
		return &yamlfile.Problem{Line: line, Field: f.Name, Message: fmt.Sprintf("has no value: give one, or remove the line for the default (%s)", defaultText(f))}
	case r.Kind == yaml.ScalarNode:
		return nil
	case r.Kind == yaml.SequenceNode && isSlice:
		for _, item := range r.Content {
			if item = yamlfile.Resolve(item); item.Kind != yaml.ScalarNode {
				return &yamlfile.Problem{Line: max(item.Line, line), Field: f.Name, Message: fmt.Sprintf("each item of the list must be a single value, not %s", yamlfile.KindName(item))}
			}
		}
		return nil
	}
	return &yamlfile.Problem{Line: line, Field: f.Name, Message: fmt.Sprintf("must be a single value (%s), not %s", typeHint(f), yamlfile.KindName(r))}
}

// defaultText is a flag's default for messages.
func defaultText(f *pflag.Flag) string {
	if f.DefValue == "" || f.DefValue == "[]" {
		return "none"
	}
	return f.DefValue
}

// set gives the flag its value from the file.
func set(fs *pflag.FlagSet, s setting) *yamlfile.Problem {
	var err error
	value := s.value.Value
	if s.value.Kind == yaml.SequenceNode {
		items := make([]string, len(s.value.Content))
		for i, item := range s.value.Content {
			items[i] = yamlfile.Resolve(item).Value
		}
		value = strings.Join(items, ",")
		err = s.flag.Value.(pflag.SliceValue).Replace(items)
		if err == nil {
			s.flag.Changed = true
		}
	} else {
		err = fs.Set(s.flag.Name, value)
	}
	if err != nil {
		msg := typeHint(s.flag)
		if msg == "" {
			msg = err.Error()
		} else {
			msg = "not " + msg
		}
		return &yamlfile.Problem{Line: s.line, Field: s.flag.Name, Value: value, Message: msg}
	}
	return nil
}

// typeHint says what a flag of f's type takes, or "" for types whose own
// error says it better.
func typeHint(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "duration":
		return "a duration: write a number with a unit, like 500ms, 5s, 1m30s or 2h"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64":
		return "a whole number, like 64"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number of zero or more, like 8192"
	case "float32", "float64":
		return "a number, like 0.5"
	case "string":
		return "a string"
	default:
		if strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array") {
			return "a list, like [a, b]"
		}
		return ""
	}
}
