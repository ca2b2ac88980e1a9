package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/certvault/certvault/internal/yamlfile"
	"go.yaml.in/yaml/v3"
)

// The keys of each part of the file, in the order messages list them.
var (
	topKeys    = []string{"vault", "ca_file", "state_dir", "certificates", "secrets", "managed_identity"}
	certKeys   = []string{"name", "dir", "files", "pfx_password_file", "owner", "group", "mode", "reload", "check", "timeout"}
	secretKeys = []string{"name", "file", "owner", "group", "mode", "reload", "timeout"}
	filesKeys  = []string{"cert", "chain", "fullchain", "key", "combined", "pfx"}
	checkKeys  = []string{"tls", "server_name"}
)

// ParseWith is Parse with env in place of the machine's users, groups,
// PATH and files (nil fields of env are the machine's own).
func ParseWith(data []byte, path string, env Env) (*Config, error) {
	p := &parser{path: path, env: env.withDefaults()}
	root, prob := yamlfile.Decode(data)
	if prob != nil {
		return nil, &Error{Path: path, Problems: []Problem{*prob}, Invalid: ErrInvalid}
	}
	c := p.config(root)
	if len(p.probs) > 0 {
		return nil, p.err()
	}
	c.Path = path
	return c, nil
}

// parser collects the problems of one file.
type parser struct {
	path  string
	env   Env
	probs []Problem
	// merged remembers entries' answers: a mapping merged through
	// several aliases is read once, so that merges of merges (a few
	// hundred bytes of "<<: [*a, *a, ...]" nested ten deep) cost their
	// size, not ten to the tenth.
	merged map[mergeKey][]entry
}

// mergeKey is what an entries answer depends on.
type mergeKey struct {
	n     *yaml.Node
	field string
	depth int
}

// add records a problem.
func (p *parser) add(line int, field, value, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	p.probs = append(p.probs, Problem{Line: line, Field: field, Value: value, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems sorted by line, without repeats (a YAML
// anchor merged into several bindings can report the same one twice).
func (p *parser) err() error {
	seen := map[Problem]bool{}
	var out []Problem
	for _, pr := range p.probs {
		if !seen[pr] {
			seen[pr] = true
			out = append(out, pr)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &Error{Path: p.path, Problems: out, Invalid: ErrInvalid}
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node { return yamlfile.Resolve(n) }

// isNull reports whether n is absent or a YAML null.
func isNull(n *yaml.Node) bool { return yamlfile.IsNull(n) }

// join names a key inside field.
func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// entry is a key and its value in a mapping.
type entry struct{ key, val *yaml.Node }

// object is a mapping's entries by key, after merges.
type object struct {
	line    int
	field   string
	entries map[string]entry
}

// val returns key's value node, or nil.
func (o object) val(key string) *yaml.Node { return resolve(o.entries[key].val) }

// lineOf returns the line of key's value, or else of the object.
func (o object) lineOf(key string) int {
	if e, ok := o.entries[key]; ok {
		if v := resolve(e.val); v != nil && v.Line > 0 && e.key.Line > 0 && v.Line >= e.key.Line {
			return v.Line
		}
		return e.key.Line
	}
	return o.line
}

// object reads mapping n, named field, reporting keys that are not in
// known. what introduces the list of known keys in messages ("known keys
// of a certificate"). It returns false when n is not a mapping.
func (p *parser) object(n *yaml.Node, field, what string, known []string) (object, bool) {
	n = resolve(n)
	o := object{line: n.Line, field: field, entries: map[string]entry{}}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, field, "", "must be a mapping of keys (%s), not %s", strings.Join(known, ", "), kindName(n))
		return o, false
	}
	for _, e := range p.entries(n, field, 0) {
		key := e.key.Value
		if slices.Contains(known, key) {
			o.entries[key] = e
			continue
		}
		msg := "unknown key"
		if s := yamlfile.Suggest(key, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		p.add(e.key.Line, join(field, key), "", "%s; %s: %s", msg, what, strings.Join(known, ", "))
	}
	return o, true
}

// maxMergeDepth bounds nested YAML merge keys.
const maxMergeDepth = 10

// entries returns the entries of mapping n with YAML merge keys ("<<:
// *anchor") applied: the mapping's own keys win over merged ones, and an
// earlier merged mapping over a later one. It reports repeated keys.
func (p *parser) entries(n *yaml.Node, field string, depth int) []entry {
	key := mergeKey{n, field, depth}
	if out, ok := p.merged[key]; ok {
		return out
	}
	out := p.readEntries(n, field, depth)
	if p.merged == nil {
		p.merged = map[mergeKey][]entry{}
	}
	p.merged[key] = out
	return out
}

// readEntries is entries without the memory.
func (p *parser) readEntries(n *yaml.Node, field string, depth int) []entry {
	seen := map[string]int{}
	var out []entry
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, field, "", "a key must be a plain word, not %s", kindName(k))
			continue
		}
		if j, dup := seen[k.Value]; dup {
			p.add(k.Line, join(field, k.Value), "", "set twice (first on line %d): keep one", out[j].key.Line)
			continue
		}
		seen[k.Value] = len(out)
		out = append(out, entry{k, v})
	}
	for _, m := range merges {
		var from []*yaml.Node
		switch r := resolve(m); r.Kind {
		case yaml.MappingNode:
			from = append(from, r)
		case yaml.SequenceNode:
			for _, c := range r.Content {
				if c = resolve(c); c.Kind == yaml.MappingNode {
					from = append(from, c)
				} else {
					p.add(c.Line, field, "", "a merge (<<) takes mappings, not %s", kindName(c))
				}
			}
		default:
			p.add(r.Line, field, "", "a merge (<<) takes a mapping, not %s", kindName(r))
		}
		for _, f := range from {
			if depth >= maxMergeDepth {
				p.add(f.Line, field, "", "merges (<<) nested too deep")
				continue
			}
			for _, e := range p.entries(f, field, depth+1) {
				if _, ok := seen[e.key.Value]; !ok {
					seen[e.key.Value] = len(out)
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// kindName names the kind of n for messages.
func kindName(n *yaml.Node) string { return yamlfile.KindName(n) }

// str returns the text of key's value: "" when absent or null, and false
// (reported) when it is a list or mapping.
func (p *parser) str(o object, key string) (string, bool) {
	v := o.val(key)
	if isNull(v) {
		return "", true
	}
	if v.Kind != yaml.ScalarNode {
		p.add(v.Line, join(o.field, key), "", "must be a single value, not %s", kindName(v))
		return "", false
	}
	return v.Value, true
}

// list returns the items of the list under key, nil when absent or
// null; false (reported) when it is not a list. first is the key each
// item starts with, for the message.
func (p *parser) list(o object, key, what, first string) ([]*yaml.Node, bool) {
	v := o.val(key)
	if isNull(v) {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, join(o.field, key), "", "must be a list of %s, each starting with \"- %s:\", not %s", what, first, kindName(v))
		return nil, false
	}
	return v.Content, true
}
