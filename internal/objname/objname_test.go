package objname

import "testing"

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"www", "www"},
		{"WWW", "www"},
		{"Web-Cert-01", "web-cert-01"},
		{"\u212a", "\u212a"}, // KELVIN SIGN is not folded to "k"
		{"caSEy", "casey"},
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEqualAndPrefix(t *testing.T) {
	if !Equal("CASEY", "casey") {
		t.Error("Equal(CASEY, casey) = false, want true")
	}
	if Equal("\u212a", "k") {
		t.Error("Equal(KELVIN SIGN, k) = true, want false")
	}
	if !HasPrefix("WEB-cert", "web-") {
		t.Error("HasPrefix(WEB-cert, web-) = false, want true")
	}
	if HasPrefix("we", "web-") {
		t.Error("HasPrefix(we, web-) = true, want false")
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"www", "WWW", "Web-Cert", "\u212a", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Canonical(s)
		if Canonical(c) != c {
			t.Fatalf("Canonical not idempotent on %q", s)
		}
		if len(c) != len(s) {
			t.Fatalf("Canonical(%q) changed the length", s)
		}
		if !Equal(s, c) || !HasPrefix(s, c) {
			t.Fatalf("%q and its canonical form %q differ", s, c)
		}
	})
}
