package enroll

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certvault/certvault/internal/atomicfile"
)

// The files of the state directory.
const (
	// KeyFile holds the private key, PKCS #8 PEM.
	KeyFile = "key.pem"
	// CertFile holds the certificate, then the agent CA, PEM.
	CertFile = "cert.pem"
	// CAFile holds the vault CA, PEM.
	CAFile = "ca.pem"
	// IdentityFile holds agent ID, group, vault URL and expiry, JSON; it
	// is written last and marks a finished join.
	IdentityFile = "identity.json"
)

// nextSuffix names the files a renewal writes before moving them into
// place.
const nextSuffix = ".next"

// ErrNotJoined means the state directory holds no complete identity.
var ErrNotJoined = errors.New("no agent identity")

// identityFile is identity.json.
type identityFile struct {
	AgentID  string    `json:"agent_id"`
	Group    string    `json:"group"`
	VaultURL string    `json:"vault_url"`
	NotAfter time.Time `json:"not_after"`
}

// prepareStateDir creates dir (0700) if missing and checks that files can
// be made in it.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("check state directory: %w", err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("check state directory: %w", err)
	}
	return nil
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func certPEM(cert tls.Certificate) []byte {
	var b bytes.Buffer
	for _, der := range cert.Certificate {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}

func identityJSON(vaultURL string, iss *issued) []byte {
	data, _ := json.MarshalIndent(identityFile{AgentID: iss.agentID, Group: iss.group, VaultURL: vaultURL, NotAfter: iss.cert.Leaf.NotAfter.UTC()}, "", "  ")
	return append(data, '\n')
}

// writeJoin stores a new identity. It first removes identity.json and the
// leftovers of an unfinished renewal, then writes key, certificate, CA
// and at last identity.json, each atomically: a crash on the way leaves no
// identity.json, which Load refuses, rather than a key and certificate of
// two identities.
func writeJoin(dir, vaultURL string, key *ecdsa.PrivateKey, iss *issued) error {
	keyPEM, err := marshalKey(key)
	if err != nil {
		return err
	}
	for _, name := range []string{IdentityFile, KeyFile + nextSuffix, CertFile + nextSuffix} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove old identity: %w", err)
		}
	}
	return writeFiles(dir, []stateFile{
		{KeyFile, keyPEM},
		{CertFile, certPEM(iss.cert)},
		{CAFile, pemCert(iss.ca.Raw)},
		{IdentityFile, identityJSON(vaultURL, iss)},
	})
}

// writeRenew stores a renewed key and certificate. Key and certificate are
// two files that cannot be replaced at once, so:
//
//  1. key.pem.next and cert.pem.next are written (each atomically and
//     synced);
//  2. key.pem.next is renamed to key.pem, then cert.pem.next to cert.pem,
//     and the directory is synced;
//  3. identity.json is rewritten with the new expiry.
//
// A crash before step 2 leaves the old pair in place and the new pair in
// the .next files; a crash between the two renames leaves the new key in
// key.pem and the new certificate in cert.pem.next. Load recognises both
// and finishes the renewal (see Load); identity.json's expiry is only
// informational.
func writeRenew(dir, vaultURL string, key *ecdsa.PrivateKey, iss *issued) error {
	keyPEM, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := writeFiles(dir, []stateFile{{KeyFile + nextSuffix, keyPEM}, {CertFile + nextSuffix, certPEM(iss.cert)}}); err != nil {
		return err
	}
	if err := moveIntoPlace(dir, KeyFile, CertFile); err != nil {
		return err
	}
	return writeFiles(dir, []stateFile{{IdentityFile, identityJSON(vaultURL, iss)}})
}

// moveIntoPlace renames each name+".next" to name, in order, and syncs
// the directory.
func moveIntoPlace(dir string, names ...string) error {
	for _, name := range names {
		p := filepath.Join(dir, name)
		if err := os.Rename(p+nextSuffix, p); err != nil {
			return fmt.Errorf("move renewed %s into place: %w", name, err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

type stateFile struct {
	name string
	data []byte
}

func writeFiles(dir string, files []stateFile) error {
	for _, f := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("store %s: %w", f.name, err)
		}
	}
	return nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// Load reads the identity that Join stored in stateDir and checks that
// the key matches the certificate, which chains to the vault CA. An
// expired identity loads; Expiry tells.
//
// If a renewal was cut short (see Renew), Load looks at the pairs it can
// have left, key.pem.next with cert.pem.next and key.pem with
// cert.pem.next; a complete one is taken over key.pem with cert.pem unless
// its certificate expires earlier, and is moved into place.
func Load(stateDir string) (*Identity, error) {
	var meta identityFile
	data, err := readStateFile(stateDir, IdentityFile)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &meta); err != nil || meta.AgentID == "" {
		return nil, fmt.Errorf("load agent identity: %s is damaged; run 'certvault-agent join' again", filepath.Join(stateDir, IdentityFile))
	}
	caPEM, err := readStateFile(stateDir, CAFile)
	if err != nil {
		return nil, err
	}
	cas, err := parseCerts(caPEM)
	if err != nil || len(cas) != 1 {
		return nil, fmt.Errorf("load agent identity: %s is not one PEM certificate", filepath.Join(stateDir, CAFile))
	}
	ca := cas[0]
	for _, name := range []string{KeyFile, CertFile} {
		if _, err := readStateFile(stateDir, name); err != nil {
			return nil, err
		}
	}

	// Candidate pairs, the usual one first; the others exist only after
	// a renewal was cut short.
	pairs := [][2]string{
		{KeyFile, CertFile},
		{KeyFile + nextSuffix, CertFile + nextSuffix},
		{KeyFile, CertFile + nextSuffix},
	}
	best := -1
	var cert tls.Certificate
	var firstErr error
	for i, p := range pairs {
		c, err := loadPair(stateDir, p[0], p[1], ca, meta.AgentID)
		if err != nil {
			if i == 0 {
				firstErr = err
			}
			continue
		}
		// A pair left by a renewal is newer than the one in place
		// unless its certificate expires earlier.
		if best < 0 || !c.Leaf.NotAfter.Before(cert.Leaf.NotAfter) {
			best, cert = i, c
		}
	}
	switch best {
	case -1:
		return nil, fmt.Errorf("load agent identity from %s: %w", stateDir, firstErr)
	case 1:
		err = moveIntoPlace(stateDir, KeyFile, CertFile)
	case 2:
		err = moveIntoPlace(stateDir, CertFile)
	}
	if err != nil {
		return nil, fmt.Errorf("finish interrupted renewal: %w", err)
	}
	if best > 0 {
		meta.NotAfter = cert.Leaf.NotAfter.UTC()
		data, _ := json.MarshalIndent(meta, "", "  ")
		if err := writeFiles(stateDir, []stateFile{{IdentityFile, append(data, '\n')}}); err != nil {
			return nil, fmt.Errorf("finish interrupted renewal: %w", err)
		}
	}
	return newIdentity(meta.AgentID, meta.Group, meta.VaultURL, ca, cert), nil
}

// readStateFile reads a file of the state directory, with an error that
// names a missing one.
func readStateFile(dir, name string) ([]byte, error) {
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: %s is missing; run 'certvault-agent join' first", ErrNotJoined, dir, name)
	}
	if err != nil {
		return nil, fmt.Errorf("load agent identity: %w", err)
	}
	return data, nil
}

// loadPair reads a key and certificate file and checks them as assemble
// does.
func loadPair(dir, keyName, certName string, ca *x509.Certificate, agentID string) (tls.Certificate, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyName))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read key: %w", err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return tls.Certificate{}, fmt.Errorf("%s does not hold a PEM PRIVATE KEY", keyName)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse %s: %w", keyName, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("%s holds a %T, not a signing key", keyName, k)
	}
	certData, err := os.ReadFile(filepath.Join(dir, certName))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read certificate: %w", err)
	}
	certs, err := parseCerts(certData)
	if err != nil || len(certs) == 0 {
		return tls.Certificate{}, fmt.Errorf("%s does not hold PEM certificates", certName)
	}
	cert, err := assemble(certs, key, ca, agentID)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("check %s and %s: %w", keyName, certName, err)
	}
	return cert, nil
}
