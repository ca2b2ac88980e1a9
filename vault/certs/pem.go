package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrBadPEM wraps every error of ParsePEM and CheckRepeats; the message
// says what is wrong and where.
var ErrBadPEM = errors.New("certs: malformed PEM")

var (
	pemBegin = []byte("-----BEGIN ")
	pemEnd   = []byte("-----END ")
	pemDash  = []byte("-----")
)

// ParsePEM reads PEM text strictly, where encoding/pem is lenient: it
// skips any text around and between blocks and a block it cannot read
// (so a truncated last certificate vanishes without a word). Here only
// white space may stand outside the blocks, every block must have its END
// line and decode, and at least one block must be there. Errors name the
// line.
func ParsePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	line := func(rest []byte) int { return 1 + bytes.Count(data[:len(data)-len(rest)], []byte("\n")) }
	rest := data
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		at := line(rest)
		if !bytes.HasPrefix(rest, pemBegin) {
			// The text is not quoted: it may be part of a key.
			return nil, fmt.Errorf("%w: line %d: text outside a PEM block; remove everything but the -----BEGIN/-----END blocks", ErrBadPEM, at)
		}
		// The block ends with the first END line; it must not hold another
		// BEGIN (encoding/pem would skip the broken first block).
		end := bytes.Index(rest, pemEnd)
		if end < 0 {
			return nil, fmt.Errorf("%w: line %d: the PEM block has no -----END line (truncated?)", ErrBadPEM, at)
		}
		closing := bytes.Index(rest[end+len(pemEnd):], pemDash)
		if closing < 0 {
			return nil, fmt.Errorf("%w: line %d: the PEM block's -----END line is incomplete", ErrBadPEM, line(rest[end:]))
		}
		n := end + len(pemEnd) + closing + len(pemDash)
		if bytes.Contains(rest[len(pemBegin):end], pemBegin) {
			return nil, fmt.Errorf("%w: line %d: the PEM block has no -----END line before the next -----BEGIN (truncated?)", ErrBadPEM, at)
		}
		b, left := pem.Decode(rest[:n])
		if b == nil || len(bytes.TrimSpace(left)) != 0 {
			return nil, fmt.Errorf("%w: line %d: the PEM block cannot be read (bad base64, or BEGIN and END types differ)", ErrBadPEM, at)
		}
		blocks = append(blocks, b)
		rest = rest[n:]
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadPEM)
	}
	return blocks, nil
}

// CheckRepeats refuses a chain that holds the same certificate twice.
func CheckRepeats(chain []*x509.Certificate) error {
	for i, c := range chain {
		for j := range i {
			if bytes.Equal(c.Raw, chain[j].Raw) {
				return fmt.Errorf("%w: certificate %d repeats certificate %d (%s); give each certificate once", ErrBadPEM, i+1, j+1, c.Subject)
			}
		}
	}
	return nil
}
