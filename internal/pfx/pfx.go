// Package pfx bounds the work of decoding a PKCS #12 (PFX) file. A PKCS
// #12 file names its own key derivation cost, an iteration count for its
// MAC, for each encrypted safe and for each shrouded key, and
// go-pkcs12 honours any count: a file of a few hundred bytes can ask for
// 2^31 iterations, half an hour of CPU per derivation. CheckIterations reads
// the counts a file declares before it is decoded. It does not decode,
// decrypt or verify anything itself.
package pfx

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// MaxIterations is the largest iteration count CheckIterations accepts for
// one key derivation: far above what OpenSSL, Windows, Key Vault and
// go-pkcs12 write (2,000 to 10,000) and above the 600,000 recommended for
// PBKDF2-SHA256, yet about a second of CPU at most.
const MaxIterations = 1_000_000

// ErrTooCostly means the file asks for more iterations than MaxIterations.
var ErrTooCostly = errors.New("pfx: the PKCS #12 file asks for too many key derivation iterations")

// The ASN.1 shapes of RFC 7292 and RFC 8018, as go-pkcs12 reads them.
type (
	pfxPdu struct {
		Version  int
		AuthSafe contentInfo
		MacData  macData `asn1:"optional"`
	}
	contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
	}
	macData struct {
		Mac        digestInfo
		MacSalt    []byte
		Iterations int `asn1:"optional,default:1"`
	}
	digestInfo struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}
	encryptedData struct {
		Version              int
		EncryptedContentInfo encryptedContentInfo
	}
	encryptedContentInfo struct {
		ContentType                asn1.ObjectIdentifier
		ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedContent           []byte `asn1:"tag:0,optional"`
	}
	safeBag struct {
		ID         asn1.ObjectIdentifier
		Value      asn1.RawValue `asn1:"tag:0,explicit"`
		Attributes asn1.RawValue `asn1:"optional"`
	}
	encryptedPrivateKeyInfo struct {
		Algorithm     pkix.AlgorithmIdentifier
		EncryptedData []byte
	}
	pbeParams struct {
		Salt       []byte
		Iterations int
	}
	pbes2Params struct {
		Kdf              pkix.AlgorithmIdentifier
		EncryptionScheme pkix.AlgorithmIdentifier
	}
	pbkdf2Params struct {
		Salt       asn1.RawValue
		Iterations int
		KeyLength  int                      `asn1:"optional"`
		Prf        pkix.AlgorithmIdentifier `asn1:"optional"`
	}
)

var (
	oidData                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidPBES2               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPBMAC1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidPKCS12PBEAlgorithms = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
)

// CheckIterations returns ErrTooCostly when the PKCS #12 file der declares
// an iteration count above MaxIterations for its MAC, an encrypted safe or
// a shrouded key in a plain safe. A file it cannot read is left to the
// decoder to refuse (nil). Shrouded keys inside an encrypted safe are
// out of its sight: they are encrypted.
func CheckIterations(der []byte) error {
	var pfx pfxPdu
	if _, err := asn1.Unmarshal(der, &pfx); err != nil {
		return nil
	}
	macIter := pfx.MacData.Iterations
	if pfx.MacData.Mac.Algorithm.Algorithm.Equal(oidPBMAC1) {
		var p struct {
			Kdf pkix.AlgorithmIdentifier
			Mac pkix.AlgorithmIdentifier
		}
		if _, err := asn1.Unmarshal(pfx.MacData.Mac.Algorithm.Parameters.FullBytes, &p); err == nil {
			if err := checkKDF(p.Kdf, "MAC"); err != nil {
				return err
			}
		}
	} else if macIter > MaxIterations {
		return fmt.Errorf("%w: the MAC asks for %d (at most %d)", ErrTooCostly, macIter, MaxIterations)
	}
	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		return nil
	}
	var safe []byte
	if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &safe); err != nil {
		return nil
	}
	var infos []contentInfo
	if _, err := asn1.Unmarshal(safe, &infos); err != nil {
		return nil
	}
	for _, ci := range infos {
		switch {
		case ci.ContentType.Equal(oidData):
			var data []byte
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &data); err != nil {
				continue
			}
			var bags []safeBag
			if _, err := asn1.Unmarshal(data, &bags); err != nil {
				continue
			}
			for _, bag := range bags {
				if !bag.ID.Equal(oidShroudedKeyBag) {
					continue
				}
				var k encryptedPrivateKeyInfo
				if _, err := asn1.Unmarshal(bag.Value.Bytes, &k); err != nil {
					continue
				}
				if err := checkAlgorithm(k.Algorithm, "a shrouded key"); err != nil {
					return err
				}
			}
		case ci.ContentType.Equal(oidEncryptedData):
			var ed encryptedData
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
				continue
			}
			if err := checkAlgorithm(ed.EncryptedContentInfo.ContentEncryptionAlgorithm, "an encrypted safe"); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAlgorithm checks the iteration count of a password-based
// encryption algorithm: PKCS #12's own (salt and count) or PBES2.
func checkAlgorithm(alg pkix.AlgorithmIdentifier, what string) error {
	switch {
	case alg.Algorithm.Equal(oidPBES2):
		var p pbes2Params
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil {
			return nil
		}
		return checkKDF(p.Kdf, what)
	case len(alg.Algorithm) == len(oidPKCS12PBEAlgorithms)+1 && alg.Algorithm[:len(oidPKCS12PBEAlgorithms)].Equal(oidPKCS12PBEAlgorithms):
		var p pbeParams
		if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil {
			return tooLarge(err, what)
		}
		return checkCount(p.Iterations, what)
	}
	return nil
}

// checkKDF checks a PBKDF2 parameter block.
func checkKDF(kdf pkix.AlgorithmIdentifier, what string) error {
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return nil
	}
	var p pbkdf2Params
	if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
		return tooLarge(err, what)
	}
	return checkCount(p.Iterations, what)
}

func checkCount(n int, what string) error {
	if n > MaxIterations {
		return fmt.Errorf("%w: %s asks for %d (at most %d)", ErrTooCostly, what, n, MaxIterations)
	}
	return nil
}

// tooLarge turns an integer that does not fit an int into ErrTooCostly;
// other errors are left to the decoder.
func tooLarge(err error, what string) error {
	var se asn1.StructuralError
	if errors.As(err, &se) && se.Msg == "integer too large" {
		return fmt.Errorf("%w: %s asks for more than %d", ErrTooCostly, what, MaxIterations)
	}
	return nil
}
