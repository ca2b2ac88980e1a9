package certs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParsePEM(t *testing.T) {
	a := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("first")}))
	b := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("second")}))
	truncated := a[:len(a)-len("-----END CERTIFICATE-----\n")]
	for _, tc := range []struct {
		name string
		in   string
		// blocks is how many blocks it reads; 0 means it refuses.
		blocks int
		// msg is what the refusal must say.
		msg string
	}{
		{"one", a, 1, ""},
		{"two with blank lines and CRLF", "\r\n" + a + "\n\n" + strings.ReplaceAll(b, "\n", "\r\n") + "\n", 2, ""},
		{"no trailing newline", strings.TrimSuffix(a, "\n"), 1, ""},
		{"trailing garbage", a + "garbage\n", 0, "line 4: text outside a PEM block"},
		{"garbage between", a + "Bag Attributes\n" + b, 0, "line 4: text outside"},
		{"garbage before", "subject=/CN=x\n" + a, 0, "line 1: text outside"},
		{"garbage after END on its line", strings.TrimSuffix(a, "\n") + "xyz\n", 0, "line 3: text outside"},
		{"truncated last block", a + truncated, 0, "line 4: the PEM block has no -----END line"},
		{"truncated block before a good one", truncated + a, 0, "line 1: the PEM block has no -----END line before the next -----BEGIN"},
		{"END types differ", strings.Replace(a, "END CERTIFICATE", "END PRIVATE KEY", 1), 0, "cannot be read"},
		{"bad base64", strings.Replace(a, "Zmlyc3Q=", "Zm!!c3Q=", 1), 0, "cannot be read"},
		{"END line cut", strings.TrimSuffix(a, "-----\n"), 0, "incomplete"},
		{"empty", " \n", 0, "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, err := ParsePEM([]byte(tc.in))
			if tc.blocks > 0 {
				if err != nil || len(blocks) != tc.blocks {
					t.Fatalf("ParsePEM: got %d blocks, %v; want %d blocks", len(blocks), err, tc.blocks)
				}
				return
			}
			if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParsePEM: got %d blocks, %v; want ErrBadPEM saying %q", len(blocks), err, tc.msg)
			}
		})
	}
	if _, err := ParsePEM([]byte(a + "secret-looking-text")); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("ParsePEM quotes the stray text or accepts it: %v", err)
	}
}

func TestParseImportStrictPEM(t *testing.T) {
	ca, caKey := testCA(t)
	p := policy(t, nil)
	key, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatal(err)
	}
	der, err := Sign(p, key.Public(), ca, caKey, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	if _, err := ParseImport(keyPEM+leafPEM+caPEM, "", time.Now()); err != nil {
		t.Fatalf("ParseImport of key, leaf and CA: %v", err)
	}
	for _, tc := range []struct {
		name, value, msg string
	}{
		{"trailing garbage", keyPEM + leafPEM + "trailing garbage", fmt.Sprintf("line %d: text outside a PEM block", strings.Count(keyPEM+leafPEM, "\n")+1)},
		{"truncated CA", keyPEM + leafPEM + caPEM[:len(caPEM)/2], "no -----END line"},
		{"repeated leaf", keyPEM + leafPEM + leafPEM, "certificate 2 repeats certificate 1 (CN=www.example.com,O=Contoso)"},
		{"repeated CA", keyPEM + leafPEM + caPEM + caPEM, "certificate 3 repeats certificate 2"},
		{"two keys", keyPEM + keyPEM + leafPEM, "more than one private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseImport(tc.value, "", time.Now())
			if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ParseImport: got %v, want ErrBadPEM saying %q", err, tc.msg)
			}
		})
	}

	// x5c entries in PEM: one certificate each, nothing around it.
	if _, err := ParseChainDER([][]byte{[]byte(leafPEM), ca.Raw}); err != nil {
		t.Fatalf("ParseChainDER of a PEM and a DER entry: %v", err)
	}
	for name, entry := range map[string]string{
		"garbage": leafPEM + "garbage",
		"two":     leafPEM + caPEM,
		"key":     keyPEM,
	} {
		if _, err := ParseChainDER([][]byte{[]byte(entry)}); !errors.Is(err, ErrBadPEM) {
			t.Errorf("ParseChainDER of an x5c entry with %s: got %v, want ErrBadPEM", name, err)
		}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRepeats([]*x509.Certificate{leaf, ca, leaf}); !errors.Is(err, ErrBadPEM) {
		t.Errorf("CheckRepeats of leaf, CA, leaf: got %v, want ErrBadPEM", err)
	}
}
