// Package objname owns the one canonical form of object names. Names of
// certificates, keys, secrets and issuers are case-insensitive, as in Key
// Vault: "www", "WWW" and "Www" are one object. Storage keys, scope
// comparisons, rollouts, agent bindings and audit filters all go through
// Canonical, so that no two code paths can disagree on whether two
// spellings are the same name. It does not validate names (the vault does)
// and keeps no state.
package objname

// Canonical returns the canonical form of an object name: ASCII letters
// folded to lower case, every other byte unchanged. Only ASCII is folded,
// on purpose: Unicode case mapping would make "K" (U+212A KELVIN SIGN)
// equal to "k", so a name the validator refuses could still match one it
// accepts.
func Canonical(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return name
}

// Equal reports whether a and b name the same object.
func Equal(a, b string) bool { return Canonical(a) == Canonical(b) }

// HasPrefix reports whether name starts with prefix, compared on the
// canonical form (the prefix scopes of role assignments).
func HasPrefix(name, prefix string) bool {
	n, p := Canonical(name), Canonical(prefix)
	return len(n) >= len(p) && n[:len(p)] == p
}
