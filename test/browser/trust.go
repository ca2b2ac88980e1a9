package browser

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// certutilTimeout bounds one run of certutil.
const certutilTimeout = 30 * time.Second

// trustCAs creates the NSS database $home/.pki/nssdb, where Chromium on
// Linux looks for user-added trust anchors, and adds every certificate of
// the PEM files to it as a CA trusted for TLS servers ("C,,").
func trustCAs(home string, pemFiles []string) error {
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return fmt.Errorf("create the NSS database directory: %w", err)
	}
	if err := certutil("-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		return err
	}
	n := 0
	for _, file := range pemFiles {
		certs, err := readCerts(file)
		if err != nil {
			return err
		}
		for _, c := range certs {
			n++
			der := filepath.Join(home, fmt.Sprintf("ca-%d.der", n))
			if err := os.WriteFile(der, c.Raw, 0o600); err != nil {
				return fmt.Errorf("write CA %q: %w", c.Subject, err)
			}
			nick := fmt.Sprintf("test CA %d (%s)", n, c.Subject.CommonName)
			if err := certutil("-A", "-d", "sql:"+db, "-n", nick, "-t", "C,,", "-i", der); err != nil {
				return fmt.Errorf("trust CA %q from %s: %w", c.Subject, file, err)
			}
		}
	}
	return nil
}

// readCerts parses every CERTIFICATE block of a PEM file; a file with none
// is an error.
func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse a certificate of %s: %w", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("read CA file %s: no PEM CERTIFICATE block", file)
	}
	return certs, nil
}

// certutil runs NSS's certutil with args, bounded by certutilTimeout.
func certutil(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), certutilTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "certutil", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("certutil %v: %w\n%s", args, err, out)
	}
	return nil
}
