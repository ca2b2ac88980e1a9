// Package serial formats X.509 certificate serial numbers the way openssl
// prints them (`openssl x509 -noout -serial`): upper-case hex, two digits
// a byte of the DER integer's magnitude, so that leading zeros are kept
// ("0A1B…", not "a1b…"). Every serial the CLI, the API and the agent show
// goes through it, so that an operator can compare them with openssl's
// output and with each other. It does not parse certificates.
package serial

import (
	"fmt"
	"math/big"
)

// Format returns n as openssl prints a certificate serial: upper-case
// hex, two digits per byte, "00" for zero, a leading "-" for a negative
// number (which RFC 5280 forbids but some certificates carry), "none" for
// nil.
func Format(n *big.Int) string {
	switch {
	case n == nil:
		return "none"
	case n.Sign() == 0:
		return "00"
	case n.Sign() < 0:
		return fmt.Sprintf("-%X", new(big.Int).Neg(n).Bytes())
	}
	return fmt.Sprintf("%X", n.Bytes())
}

// FormatHex re-renders a serial stored as hex in any case, with or
// without leading zeros (as big.Int.Text(16) writes it), the way Format
// does. A string that is not hex is returned unchanged; "" stays "".
func FormatHex(s string) string {
	if s == "" {
		return ""
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return s
	}
	return Format(n)
}
