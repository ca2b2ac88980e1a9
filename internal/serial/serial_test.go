package serial

import (
	"math/big"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *big.Int
		want string
	}{
		{"nil", nil, "none"},
		{"zero", big.NewInt(0), "00"},
		{"one nibble", big.NewInt(0xa), "0A"},
		{"leading zero nibble", big.NewInt(0x0a1b2c), "0A1B2C"},
		{"high bit", big.NewInt(0x8f01), "8F01"},
		{"negative", big.NewInt(-0x0102), "-0102"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Format(tc.in); got != tc.want {
				t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatHex(t *testing.T) {
	for in, want := range map[string]string{
		"":          "",
		"a1b2c":     "0A1B2C",
		"0A1B2C":    "0A1B2C",
		"ff":        "FF",
		"not-a-hex": "not-a-hex",
	} {
		if got := FormatHex(in); got != want {
			t.Errorf("FormatHex(%q) = %q, want %q", in, got, want)
		}
	}
}
