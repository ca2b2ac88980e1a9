package test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// sdkKeysMaxResultsPolicy adds maxresults to the first request of a key
// list, as sdkMaxResultsPolicy does for certificates and secrets.
type sdkKeysMaxResultsPolicy struct{ n string }

// Do implements policy.Policy.
func (p sdkKeysMaxResultsPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	path := strings.Trim(raw.URL.Path, "/")
	if raw.Method == http.MethodGet && (path == "keys" || path == "deletedkeys" || strings.HasSuffix(path, "/versions")) {
		q := raw.URL.Query()
		if q.Get("maxresults") == "" && q.Get("$skiptoken") == "" {
			q.Set("maxresults", p.n)
			raw.URL.RawQuery = q.Encode()
		}
	}
	return req.Next()
}

// keysClient returns an azkeys client for the vault that authenticates
// with cred and pages key lists five at a time.
func (env *sdkEnv) keysClient(t *testing.T, cred azcore.TokenCredential) *azkeys.Client {
	t.Helper()
	kc, err := azkeys.NewClient(env.url, cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport:       env.wire,
			PerCallPolicies: []policy.Policy{sdkKeysMaxResultsPolicy{n: "5"}},
			Retry:           policy.RetryOptions{MaxRetries: -1},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatalf("azkeys.NewClient: %v", err)
	}
	return kc
}

// sdkVersionRE is the shape of a Key Vault object version.
var sdkVersionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// sdkJWKPublic rebuilds the public key of a JSON Web Key, refusing
// anything Key Vault would not send: private members, short coordinates,
// points off the curve.
func sdkJWKPublic(t *testing.T, j *azkeys.JSONWebKey) crypto.PublicKey {
	t.Helper()
	if j == nil || j.Kty == nil {
		t.Fatalf("JWK: got %+v, want a key with kty", j)
	}
	if len(j.D) != 0 || len(j.P) != 0 || len(j.Q) != 0 || len(j.DP) != 0 || len(j.DQ) != 0 || len(j.QI) != 0 || len(j.K) != 0 {
		t.Fatalf("JWK of kty %s carries private members", *j.Kty)
	}
	switch *j.Kty {
	case azkeys.KeyTypeRSA:
		if len(j.N) == 0 || len(j.E) == 0 || j.N[0] == 0 || j.E[0] == 0 {
			t.Fatalf("RSA JWK: got n %d bytes, e %x; want both, without leading zeros", len(j.N), j.E)
		}
		e := new(big.Int).SetBytes(j.E)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			t.Fatalf("RSA JWK: e %x is too large", j.E)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())}
	case azkeys.KeyTypeEC:
		if j.Crv == nil {
			t.Fatal("EC JWK without crv")
		}
		curve := map[azkeys.CurveName]elliptic.Curve{
			azkeys.CurveNameP256: elliptic.P256(),
			azkeys.CurveNameP384: elliptic.P384(),
			azkeys.CurveNameP521: elliptic.P521(),
		}[*j.Crv]
		if curve == nil {
			t.Fatalf("EC JWK: unknown crv %q", *j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(j.X) != size || len(j.Y) != size {
			t.Fatalf("EC JWK on %s: got x %d and y %d bytes, want %d each", *j.Crv, len(j.X), len(j.Y), size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, slices.Concat([]byte{4}, j.X, j.Y))
		if err != nil {
			t.Fatalf("EC JWK on %s: %v", *j.Crv, err)
		}
		return pub
	}
	t.Fatalf("JWK: unexpected kty %q", *j.Kty)
	return nil
}

// sdkJWKPrivate renders a private key as a JWK for ImportKey.
func sdkJWKPrivate(t *testing.T, key crypto.Signer) *azkeys.JSONWebKey {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		k.Precompute()
		return &azkeys.JSONWebKey{
			Kty: to.Ptr(azkeys.KeyTypeRSA),
			N:   k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(), D: k.D.Bytes(),
			P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(),
			DP: k.Precomputed.Dp.Bytes(), DQ: k.Precomputed.Dq.Bytes(), QI: k.Precomputed.Qinv.Bytes(),
		}
	case *ecdsa.PrivateKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		pt, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return &azkeys.JSONWebKey{
			Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveName(k.Curve.Params().Name)),
			D: d, X: pt[1 : 1+size], Y: pt[1+size:],
		}
	}
	t.Fatalf("sdkJWKPrivate: unexpected key %T", key)
	return nil
}

// sdkSigAlgs are the signature algorithms the tests use, with their hash.
var sdkSigAlgs = map[azkeys.SignatureAlgorithm]crypto.Hash{
	azkeys.SignatureAlgorithmES256: crypto.SHA256,
	azkeys.SignatureAlgorithmES384: crypto.SHA384,
	azkeys.SignatureAlgorithmRS256: crypto.SHA256,
	azkeys.SignatureAlgorithmPS256: crypto.SHA256,
}

// sdkDigest hashes msg for alg.
func sdkDigest(t *testing.T, alg azkeys.SignatureAlgorithm, msg string) []byte {
	t.Helper()
	switch sdkSigAlgs[alg] {
	case crypto.SHA256:
		d := sha256.Sum256([]byte(msg))
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384([]byte(msg))
		return d[:]
	}
	t.Fatalf("no digest for %s", alg)
	return nil
}

// sdkVerifyLocal checks a Key Vault signature with the standard library:
// ES* as the raw r||s of JWS, RS* as PKCS #1 v1.5, PS* as PSS with a salt
// as long as the hash.
func sdkVerifyLocal(pub crypto.PublicKey, alg azkeys.SignatureAlgorithm, digest, sig []byte) error {
	h := sdkSigAlgs[alg]
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !strings.HasPrefix(string(alg), "ES") {
			return fmt.Errorf("alg %s on an EC key", alg)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("got a %d-byte signature, want r||s of %d bytes", len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return fmt.Errorf("%s signature does not verify", alg)
		}
		return nil
	case *rsa.PublicKey:
		switch {
		case strings.HasPrefix(string(alg), "RS"):
			return rsa.VerifyPKCS1v15(k, h, digest, sig)
		case strings.HasPrefix(string(alg), "PS"):
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	}
	return fmt.Errorf("alg %s on a %T", alg, pub)
}

// sdkOAEPHash is the OAEP hash of a Key Vault encryption algorithm.
func sdkOAEPHash(alg azkeys.EncryptionAlgorithm) crypto.Hash {
	if alg == azkeys.EncryptionAlgorithmRSAOAEP {
		return crypto.SHA1
	}
	return crypto.SHA256
}

// TestSDKKeys drives a real single-node certvaultd with the official Azure
// Key Vault keys SDK (azkeys), unchanged apart from challenge-resource
// verification being off for a 127.0.0.1 vault.
func TestSDKKeys(t *testing.T) {
	t.Parallel()
	env := newSDKEnv(t)
	kc := env.keysClient(t, env.cred)

	// createKey creates a key, checks the bundle's shape and returns it
	// with its rebuilt public key.
	createKey := func(t *testing.T, name string, p azkeys.CreateKeyParameters) (azkeys.KeyBundle, crypto.PublicKey) {
		t.Helper()
		resp, err := kc.CreateKey(sdkCtx(t), name, p, nil)
		if err != nil {
			t.Fatalf("CreateKey(%s): %v", name, err)
		}
		kb := resp.KeyBundle
		if kb.Key == nil || kb.Key.KID == nil {
			t.Fatalf("CreateKey(%s): got key %+v, want a JWK with kid", name, kb.Key)
		}
		if kid := kb.Key.KID; kid.Name() != name || !sdkVersionRE.MatchString(kid.Version()) ||
			string(*kid) != env.url+"/keys/"+name+"/"+kid.Version() {
			t.Fatalf("CreateKey(%s): got kid %s, want %s/keys/%s/<32 hex>", name, *kid, env.url, name)
		}
		return kb, sdkJWKPublic(t, kb.Key)
	}
	// createCert creates a Self-signed certificate with policy and waits
	// for it.
	createCert := func(t *testing.T, name string, p *azcertificates.CertificatePolicy) azcertificates.Certificate {
		t.Helper()
		ctx := sdkCtx(t)
		if _, err := env.certs.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: p}, nil); err != nil {
			t.Fatalf("CreateCertificate(%s): %v", name, err)
		}
		if op := sdkWaitOperation(ctx, t, env.certs, name); *op.Status != "completed" {
			t.Fatalf("operation of %s: got status %q, want completed", name, *op.Status)
		}
		got, err := env.certs.GetCertificate(ctx, name, "", nil)
		if err != nil {
			t.Fatalf("GetCertificate(%s): %v", name, err)
		}
		return got.Certificate
	}
	// signAndCheck signs a digest of msg with a key (version may be ""),
	// then verifies the signature with pub locally and through the vault.
	signAndCheck := func(t *testing.T, name, version string, alg azkeys.SignatureAlgorithm, pub crypto.PublicKey, msg string) []byte {
		t.Helper()
		ctx := sdkCtx(t)
		digest := sdkDigest(t, alg, msg)
		sig, err := kc.Sign(ctx, name, version, azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: digest}, nil)
		if err != nil {
			t.Fatalf("Sign(%s, %s): %v", name, alg, err)
		}
		if sig.KID == nil || sig.KID.Name() != name || (version != "" && sig.KID.Version() != version) || !sdkVersionRE.MatchString(sig.KID.Version()) {
			t.Errorf("Sign(%s, %s): got kid %v, want %s/keys/%s/%s", name, alg, sig.KID, env.url, name, version)
		}
		if err := sdkVerifyLocal(pub, alg, digest, sig.Result); err != nil {
			t.Fatalf("Sign(%s, %s): local verify: %v", name, alg, err)
		}
		v, err := kc.Verify(ctx, name, version, azkeys.VerifyParameters{Algorithm: to.Ptr(alg), Digest: digest, Signature: sig.Result}, nil)
		if err != nil {
			t.Fatalf("Verify(%s, %s): %v", name, alg, err)
		}
		if v.Value == nil || !*v.Value {
			t.Errorf("Verify(%s, %s) of its own signature: got %v, want true", name, alg, v.Value)
		}
		other := sdkDigest(t, alg, msg+" (altered)")
		v, err = kc.Verify(ctx, name, version, azkeys.VerifyParameters{Algorithm: to.Ptr(alg), Digest: other, Signature: sig.Result}, nil)
		if err != nil {
			t.Fatalf("Verify(%s, %s) of another digest: %v", name, alg, err)
		}
		if v.Value == nil || *v.Value {
			t.Errorf("Verify(%s, %s) of another digest: got %v, want false", name, alg, v.Value)
		}
		if sdkVerifyLocal(pub, alg, other, sig.Result) == nil {
			t.Errorf("local verify of %s over another digest succeeded", alg)
		}
		return sig.Result
	}

	t.Run("CreateGet", func(t *testing.T) {
		rsaOps := []azkeys.KeyOperation{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
		ecOps := []azkeys.KeyOperation{"sign", "verify"}
		for _, tc := range []struct {
			name   string
			params azkeys.CreateKeyParameters
			check  func(crypto.PublicKey) bool
			ops    []azkeys.KeyOperation
		}{
			{"ec-p256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)},
				func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() }, ecOps},
			{"ec-p384", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)},
				func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P384() }, ecOps},
			{"rsa-2048", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)},
				func(p crypto.PublicKey) bool {
					k, ok := p.(*rsa.PublicKey)
					return ok && k.N.BitLen() == 2048 && k.E == 65537
				}, rsaOps},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := sdkCtx(t)
				tc.params.Tags = map[string]*string{"purpose": to.Ptr(tc.name)}
				created, pub := createKey(t, tc.name, tc.params)
				if !tc.check(pub) {
					t.Fatalf("created key: got %T, want %s", pub, tc.name)
				}
				if got := slices.Sorted(slices.Values(sdkKeyOps(created.Key.KeyOps))); !slices.Equal(got, slices.Sorted(slices.Values(tc.ops))) {
					t.Errorf("key_ops: got %q, want %q", got, tc.ops)
				}
				a := created.Attributes
				if a == nil || a.Enabled == nil || !*a.Enabled || a.Created == nil || a.Updated == nil || a.RecoveryLevel == nil || *a.RecoveryLevel == "" {
					t.Errorf("attributes: got %+v, want enabled, created, updated and recoveryLevel", a)
				}
				if created.Tags["purpose"] == nil || *created.Tags["purpose"] != tc.name {
					t.Errorf("tags: got %v, want purpose=%s", created.Tags, tc.name)
				}
				if created.Managed != nil && *created.Managed {
					t.Error("a key made with CreateKey says managed")
				}
				for _, version := range []string{"", created.Key.KID.Version()} {
					got, err := kc.GetKey(ctx, tc.name, version, nil)
					if err != nil {
						t.Fatalf("GetKey(%s, %q): %v", tc.name, version, err)
					}
					if *got.Key.KID != *created.Key.KID {
						t.Errorf("GetKey(%s, %q): got kid %s, want %s", tc.name, version, *got.Key.KID, *created.Key.KID)
					}
					if !sdkSamePublicKey(sdkJWKPublic(t, got.Key), pub) {
						t.Errorf("GetKey(%s, %q): public key differs from the created one", tc.name, version)
					}
					if got.Tags["purpose"] == nil || got.Attributes == nil || got.Attributes.Created == nil || !got.Attributes.Created.Equal(*a.Created) {
						t.Errorf("GetKey(%s, %q): got tags %v attributes %+v, want those of the created key", tc.name, version, got.Tags, got.Attributes)
					}
				}
			})
		}
		_, err := kc.GetKey(sdkCtx(t), "no-such-key", "", nil)
		sdkWantStatus(t, "GetKey(no-such-key)", err, http.StatusNotFound, "KeyNotFound")
		_, err = kc.GetKey(sdkCtx(t), "ec-p256", "0123456789abcdef0123456789abcdef", nil)
		sdkWantStatus(t, "GetKey(ec-p256, unknown version)", err, http.StatusNotFound, "KeyNotFound")
	})

	t.Run("SignVerify", func(t *testing.T) {
		for _, tc := range []struct {
			key    string
			params azkeys.CreateKeyParameters
			algs   []azkeys.SignatureAlgorithm
		}{
			{"sign-ec256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmES256}},
			{"sign-ec384", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)}, []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmES384}},
			{"sign-rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmPS256}},
		} {
			t.Run(tc.key, func(t *testing.T) {
				kb, pub := createKey(t, tc.key, tc.params)
				for _, alg := range tc.algs {
					t.Run(string(alg), func(t *testing.T) {
						signAndCheck(t, tc.key, "", alg, pub, "message for "+string(alg))
						signAndCheck(t, tc.key, kb.Key.KID.Version(), alg, pub, "versioned message for "+string(alg))
					})
				}
			})
		}
		// An older version still signs with its own key.
		old, oldPub := createKey(t, "sign-rotated", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
		_, newPub := createKey(t, "sign-rotated", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
		if sdkSamePublicKey(oldPub, newPub) {
			t.Fatal("a new version of sign-rotated has the old version's key")
		}
		signAndCheck(t, "sign-rotated", old.Key.KID.Version(), azkeys.SignatureAlgorithmES256, oldPub, "old version")
		signAndCheck(t, "sign-rotated", "", azkeys.SignatureAlgorithmES256, newPub, "current version")
	})

	t.Run("EncryptWrap", func(t *testing.T) {
		ctx := sdkCtx(t)
		kb, pubKey := createKey(t, "crypt-rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)})
		pub := pubKey.(*rsa.PublicKey)
		version := kb.Key.KID.Version()
		for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSAOAEP256} {
			t.Run(string(alg), func(t *testing.T) {
				plain := []byte("attack at dawn, " + string(alg))
				enc, err := kc.Encrypt(ctx, "crypt-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: plain}, nil)
				if err != nil {
					t.Fatalf("Encrypt: %v", err)
				}
				if enc.KID == nil || *enc.KID != *kb.Key.KID {
					t.Errorf("Encrypt: got kid %v, want %s", enc.KID, *kb.Key.KID)
				}
				if len(enc.Result) != pub.Size() || bytes.Contains(enc.Result, plain) {
					t.Fatalf("Encrypt: got %d bytes, want a %d-byte ciphertext", len(enc.Result), pub.Size())
				}
				dec, err := kc.Decrypt(ctx, "crypt-rsa", version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: enc.Result}, nil)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				if !bytes.Equal(dec.Result, plain) {
					t.Fatalf("Decrypt: got %q, want %q", dec.Result, plain)
				}
				// A ciphertext made locally with the JWK decrypts in the
				// vault: the OAEP hash is the one the algorithm names.
				local, err := rsa.EncryptOAEP(sdkOAEPHash(alg).New(), rand.Reader, pub, plain, nil)
				if err != nil {
					t.Fatal(err)
				}
				dec, err = kc.Decrypt(ctx, "crypt-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: local}, nil)
				if err != nil {
					t.Fatalf("Decrypt of a local %s ciphertext: %v", alg, err)
				}
				if !bytes.Equal(dec.Result, plain) {
					t.Fatalf("Decrypt of a local %s ciphertext: got %q, want %q", alg, dec.Result, plain)
				}
				other := azkeys.EncryptionAlgorithmRSAOAEP256
				if alg == other {
					other = azkeys.EncryptionAlgorithmRSAOAEP
				}
				_, err = kc.Decrypt(ctx, "crypt-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(other), Value: local}, nil)
				sdkWantStatus(t, "Decrypt with the other OAEP hash", err, http.StatusBadRequest, "")

				cek := make([]byte, 32)
				rand.Read(cek)
				wrapped, err := kc.WrapKey(ctx, "crypt-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: cek}, nil)
				if err != nil {
					t.Fatalf("WrapKey: %v", err)
				}
				if wrapped.KID == nil || *wrapped.KID != *kb.Key.KID || len(wrapped.Result) != pub.Size() {
					t.Fatalf("WrapKey: got kid %v and %d bytes, want %s and %d bytes", wrapped.KID, len(wrapped.Result), *kb.Key.KID, pub.Size())
				}
				unwrapped, err := kc.UnwrapKey(ctx, "crypt-rsa", version, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: wrapped.Result}, nil)
				if err != nil {
					t.Fatalf("UnwrapKey: %v", err)
				}
				if !bytes.Equal(unwrapped.Result, cek) {
					t.Fatalf("UnwrapKey: got %x, want %x", unwrapped.Result, cek)
				}
				localWrap, err := rsa.EncryptOAEP(sdkOAEPHash(alg).New(), rand.Reader, pub, cek, nil)
				if err != nil {
					t.Fatal(err)
				}
				unwrapped, err = kc.UnwrapKey(ctx, "crypt-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: localWrap}, nil)
				if err != nil || !bytes.Equal(unwrapped.Result, cek) {
					t.Fatalf("UnwrapKey of a local %s wrap: got %x, %v; want %x", alg, unwrapped.Result, err, cek)
				}
			})
		}
	})

	t.Run("Import", func(t *testing.T) {
		ctx := sdkCtx(t)
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			key  crypto.Signer
			alg  azkeys.SignatureAlgorithm
		}{
			{"imported-rsa", rsaKey, azkeys.SignatureAlgorithmPS256},
			{"imported-ec", ecKey, azkeys.SignatureAlgorithmES256},
		} {
			t.Run(tc.name, func(t *testing.T) {
				jwk := sdkJWKPrivate(t, tc.key)
				resp, err := kc.ImportKey(ctx, tc.name, azkeys.ImportKeyParameters{
					Key:  jwk,
					Tags: map[string]*string{"origin": to.Ptr("imported")},
				}, nil)
				if err != nil {
					t.Fatalf("ImportKey: %v", err)
				}
				if resp.Key == nil || resp.Key.KID == nil || resp.Key.KID.Name() != tc.name || !sdkVersionRE.MatchString(resp.Key.KID.Version()) {
					t.Fatalf("ImportKey: got key %+v, want kid %s/keys/%s/<version>", resp.Key, env.url, tc.name)
				}
				if !sdkSamePublicKey(sdkJWKPublic(t, resp.Key), tc.key.Public()) {
					t.Fatal("ImportKey: the answered public key is not the imported one")
				}
				if resp.Tags["origin"] == nil || *resp.Tags["origin"] != "imported" {
					t.Errorf("ImportKey: got tags %v, want origin=imported", resp.Tags)
				}
				got, err := kc.GetKey(ctx, tc.name, "", nil)
				if err != nil {
					t.Fatalf("GetKey: %v", err)
				}
				if !sdkSamePublicKey(sdkJWKPublic(t, got.Key), tc.key.Public()) {
					t.Fatal("GetKey: the public key is not the imported one")
				}
				signAndCheck(t, tc.name, "", tc.alg, tc.key.Public(), "signed by an imported key")
			})
		}
		// An imported RSA key decrypts what its owner encrypted.
		plain := []byte("for the imported key")
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &rsaKey.PublicKey, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := kc.Decrypt(ctx, "imported-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ct}, nil)
		if err != nil || !bytes.Equal(dec.Result, plain) {
			t.Fatalf("Decrypt with the imported RSA key: got %q, %v; want %q", dec.Result, err, plain)
		}
		// The private members never come back.
		for _, d := range [][]byte{rsaKey.D.Bytes(), ecKey.D.Bytes()} {
			if env.wire.Seen(base64.RawURLEncoding.EncodeToString(d)) {
				t.Fatal("an imported private exponent or scalar appeared in a response")
			}
		}
		// Key operations given with the JWK are honoured.
		limited := sdkJWKPrivate(t, rsaKey)
		limited.KeyOps = []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)}
		resp, err := kc.ImportKey(ctx, "imported-limited", azkeys.ImportKeyParameters{Key: limited}, nil)
		if err != nil {
			t.Fatalf("ImportKey with key_ops: %v", err)
		}
		if got := sdkKeyOps(resp.Key.KeyOps); !slices.Equal(got, []azkeys.KeyOperation{"sign", "verify"}) {
			t.Errorf("ImportKey with key_ops: got %q, want [sign verify]", got)
		}
		_, err = kc.Encrypt(ctx, "imported-limited", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: plain}, nil)
		sdkWantStatus(t, "Encrypt with an imported sign-only key", err, http.StatusForbidden, "")
	})

	t.Run("UpdateDisable", func(t *testing.T) {
		ctx := sdkCtx(t)
		kb, pub := createKey(t, "upd-rsa", azkeys.CreateKeyParameters{
			Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
			Tags: map[string]*string{"stage": to.Ptr("one")},
		})
		version := kb.Key.KID.Version()

		up, err := kc.UpdateKey(ctx, "upd-rsa", "", azkeys.UpdateKeyParameters{
			Tags:   map[string]*string{"stage": to.Ptr("two"), "owner": to.Ptr("ops")},
			KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)},
		}, nil)
		if err != nil {
			t.Fatalf("UpdateKey(tags, key_ops): %v", err)
		}
		if up.Key == nil || up.Key.KID == nil || *up.Key.KID != *kb.Key.KID {
			t.Errorf("UpdateKey: got key %+v, want kid %s", up.Key, *kb.Key.KID)
		}
		if got := sdkKeyOps(up.Key.KeyOps); !slices.Equal(got, []azkeys.KeyOperation{"sign", "verify"}) {
			t.Errorf("UpdateKey: got key_ops %q, want [sign verify]", got)
		}
		if len(up.Tags) != 2 || up.Tags["stage"] == nil || *up.Tags["stage"] != "two" || up.Tags["owner"] == nil {
			t.Errorf("UpdateKey: got tags %v, want stage=two owner=ops", up.Tags)
		}
		if up.Attributes == nil || up.Attributes.Enabled == nil || !*up.Attributes.Enabled {
			t.Errorf("UpdateKey of tags: got attributes %+v, want still enabled", up.Attributes)
		}
		signAndCheck(t, "upd-rsa", "", azkeys.SignatureAlgorithmRS256, pub, "still signs")
		_, err = kc.Encrypt(ctx, "upd-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("x")}, nil)
		sdkWantStatus(t, "Encrypt after key_ops became [sign verify]", err, http.StatusForbidden, "")
		_, err = kc.WrapKey(ctx, "upd-rsa", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: []byte("x")}, nil)
		sdkWantStatus(t, "WrapKey after key_ops became [sign verify]", err, http.StatusForbidden, "")

		// Disable the version by its id.
		up, err = kc.UpdateKey(ctx, "upd-rsa", version, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil)
		if err != nil {
			t.Fatalf("UpdateKey(enabled false): %v", err)
		}
		if up.Attributes == nil || up.Attributes.Enabled == nil || *up.Attributes.Enabled {
			t.Errorf("UpdateKey(enabled false): got attributes %+v, want disabled", up.Attributes)
		}
		if up.Tags["stage"] == nil || *up.Tags["stage"] != "two" {
			t.Errorf("UpdateKey without tags: got tags %v, want them kept", up.Tags)
		}
		got, err := kc.GetKey(ctx, "upd-rsa", "", nil)
		if err != nil {
			t.Fatalf("GetKey of a disabled key: %v", err)
		}
		if got.Attributes == nil || got.Attributes.Enabled == nil || *got.Attributes.Enabled {
			t.Errorf("GetKey: got attributes %+v, want disabled", got.Attributes)
		}
		digest := sdkDigest(t, azkeys.SignatureAlgorithmRS256, "disabled")
		_, err = kc.Sign(ctx, "upd-rsa", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest}, nil)
		sdkWantStatus(t, "Sign with a disabled key", err, http.StatusForbidden, "")
		_, err = kc.Sign(ctx, "upd-rsa", version, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest}, nil)
		sdkWantStatus(t, "Sign with a disabled key version", err, http.StatusForbidden, "")

		// Listing shows the key disabled, with its tags.
		found := false
		pager := kc.NewListKeyPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list keys: %v", err)
			}
			for _, k := range page.Value {
				if k.KID != nil && k.KID.Name() == "upd-rsa" {
					found = true
					if k.Attributes == nil || k.Attributes.Enabled == nil || *k.Attributes.Enabled || k.Tags["owner"] == nil {
						t.Errorf("listed upd-rsa: got attributes %+v tags %v, want disabled with owner tag", k.Attributes, k.Tags)
					}
				}
			}
		}
		if !found {
			t.Error("upd-rsa not listed")
		}

		up, err = kc.UpdateKey(ctx, "upd-rsa", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil)
		if err != nil || up.Attributes == nil || up.Attributes.Enabled == nil || !*up.Attributes.Enabled {
			t.Fatalf("UpdateKey(enabled true): got %+v, %v", up.Attributes, err)
		}
		signAndCheck(t, "upd-rsa", "", azkeys.SignatureAlgorithmPS256, pub, "enabled again")

		_, err = kc.UpdateKey(ctx, "upd-rsa", "", azkeys.UpdateKeyParameters{KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperation("launch"))}}, nil)
		sdkWantStatus(t, "UpdateKey(key_ops launch)", err, http.StatusBadRequest, "BadParameter")
		_, err = kc.UpdateKey(ctx, "no-such-key", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
		sdkWantStatus(t, "UpdateKey(no-such-key)", err, http.StatusNotFound, "KeyNotFound")
	})

	t.Run("ListKeysAndVersions", func(t *testing.T) {
		ctx := sdkCtx(t)
		want := map[string]int{}
		for i := range 12 {
			name := fmt.Sprintf("list-%02d", i)
			want[name] = 0
			createKey(t, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
		}
		pages := 0
		pager := kc.NewListKeyPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list keys page %d: %v", pages+1, err)
			}
			pages++
			if len(page.Value) > 5 {
				t.Errorf("page %d: got %d items, want at most 5", pages, len(page.Value))
			}
			for _, k := range page.Value {
				if k.KID == nil {
					t.Fatalf("page %d: item without kid", pages)
				}
				if k.KID.Version() != "" || string(*k.KID) != env.url+"/keys/"+k.KID.Name() {
					t.Errorf("list item kid %s: want %s/keys/<name>, without a version", *k.KID, env.url)
				}
				if _, ok := want[k.KID.Name()]; ok {
					want[k.KID.Name()]++
					if k.Attributes == nil || k.Attributes.Created == nil || k.Attributes.Enabled == nil || !*k.Attributes.Enabled {
						t.Errorf("list item %s: got attributes %+v, want enabled and created", *k.KID, k.Attributes)
					}
				}
			}
			if pages > 100 {
				t.Fatal("more than 100 pages: the nextLink does not advance")
			}
		}
		for name, n := range want {
			if n != 1 {
				t.Errorf("key %s listed %d times, want once", name, n)
			}
		}
		if pages < 3 {
			t.Errorf("got %d pages, want at least 3 pages of 5", pages)
		}

		var versions []string
		pubs := map[string]crypto.PublicKey{}
		for range 7 {
			kb, pub := createKey(t, "list-versions", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
			versions = append(versions, kb.Key.KID.Version())
			pubs[kb.Key.KID.Version()] = pub
		}
		var listed []string
		vp := kc.NewListKeyPropertiesVersionsPager("list-versions", nil)
		for vp.More() {
			page, err := vp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list versions: %v", err)
			}
			if len(page.Value) > 5 {
				t.Errorf("versions page: got %d items, want at most 5", len(page.Value))
			}
			for _, k := range page.Value {
				if k.KID == nil || k.KID.Name() != "list-versions" || string(*k.KID) != env.url+"/keys/list-versions/"+k.KID.Version() {
					t.Fatalf("version item: got kid %v, want %s/keys/list-versions/<version>", k.KID, env.url)
				}
				listed = append(listed, k.KID.Version())
			}
		}
		slices.Sort(versions)
		slices.Sort(listed)
		if !slices.Equal(listed, versions) {
			t.Fatalf("versions: got %q, want %q", listed, versions)
		}
		// Every listed version reads back with its own key.
		for v, pub := range pubs {
			got, err := kc.GetKey(ctx, "list-versions", v, nil)
			if err != nil {
				t.Fatalf("GetKey(list-versions, %s): %v", v, err)
			}
			if !sdkSamePublicKey(sdkJWKPublic(t, got.Key), pub) {
				t.Errorf("GetKey(list-versions, %s): public key differs from the one created", v)
			}
		}
		vp = kc.NewListKeyPropertiesVersionsPager("no-such-key", nil)
		_, err := vp.NextPage(ctx)
		sdkWantStatus(t, "list versions of no-such-key", err, http.StatusNotFound, "KeyNotFound")
	})

	t.Run("DeleteRecoverPurge", func(t *testing.T) {
		ctx := sdkCtx(t)
		orig, pub := createKey(t, "del-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Tags: map[string]*string{"k": to.Ptr("v")}})
		del, err := kc.DeleteKey(ctx, "del-key", nil)
		if err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		if del.RecoveryID == nil || *del.RecoveryID != env.url+"/deletedkeys/del-key" ||
			del.DeletedDate == nil || del.ScheduledPurgeDate == nil || !del.ScheduledPurgeDate.After(*del.DeletedDate) {
			t.Errorf("deleted bundle: got recoveryId %v deleted %v purge %v", del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate)
		}
		if del.Key == nil || del.Key.KID == nil || *del.Key.KID != *orig.Key.KID || !sdkSamePublicKey(sdkJWKPublic(t, del.Key), pub) {
			t.Errorf("deleted bundle: got key %+v, want the key %s", del.Key, *orig.Key.KID)
		}
		if del.Tags["k"] == nil {
			t.Errorf("deleted bundle: got tags %v, want k=v", del.Tags)
		}
		gd, err := kc.GetDeletedKey(ctx, "del-key", nil)
		if err != nil {
			t.Fatalf("GetDeletedKey: %v", err)
		}
		if gd.Key == nil || gd.Key.KID == nil || gd.Key.KID.Name() != "del-key" || gd.RecoveryID == nil || *gd.RecoveryID != *del.RecoveryID {
			t.Errorf("GetDeletedKey: got key %+v recoveryId %v", gd.Key, gd.RecoveryID)
		}
		_, err = kc.GetKey(ctx, "del-key", "", nil)
		sdkWantStatus(t, "GetKey of a deleted key", err, http.StatusNotFound, "KeyNotFound")
		_, err = kc.Sign(ctx, "del-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: sdkDigest(t, azkeys.SignatureAlgorithmES256, "x")}, nil)
		sdkWantStatus(t, "Sign with a deleted key", err, http.StatusNotFound, "KeyNotFound")
		_, err = kc.CreateKey(ctx, "del-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
		sdkWantStatus(t, "CreateKey over a deleted key", err, http.StatusConflict, "")
		_, err = kc.DeleteKey(ctx, "del-key", nil)
		sdkWantStatus(t, "DeleteKey of a deleted key", err, http.StatusNotFound, "KeyNotFound")

		listed := false
		dp := kc.NewListDeletedKeyPropertiesPager(nil)
		for dp.More() {
			page, err := dp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list deleted keys: %v", err)
			}
			for _, d := range page.Value {
				if d.KID != nil && d.KID.Name() == "del-key" {
					listed = d.RecoveryID != nil && *d.RecoveryID == *del.RecoveryID && d.DeletedDate != nil && d.ScheduledPurgeDate != nil
				}
			}
		}
		if !listed {
			t.Error("del-key not listed (with recoveryId, deletedDate and scheduledPurgeDate) among deleted keys")
		}

		rec, err := kc.RecoverDeletedKey(ctx, "del-key", nil)
		if err != nil {
			t.Fatalf("RecoverDeletedKey: %v", err)
		}
		if rec.Key == nil || rec.Key.KID == nil || *rec.Key.KID != *orig.Key.KID {
			t.Errorf("RecoverDeletedKey: got key %+v, want kid %s", rec.Key, *orig.Key.KID)
		}
		got, err := kc.GetKey(ctx, "del-key", "", nil)
		if err != nil {
			t.Fatalf("GetKey after recover: %v", err)
		}
		if !sdkSamePublicKey(sdkJWKPublic(t, got.Key), pub) {
			t.Error("recovered key differs from the original")
		}
		signAndCheck(t, "del-key", "", azkeys.SignatureAlgorithmES256, pub, "recovered")
		_, err = kc.RecoverDeletedKey(ctx, "del-key", nil)
		sdkWantStatus(t, "RecoverDeletedKey of a live key", err, http.StatusNotFound, "")

		if _, err := kc.DeleteKey(ctx, "del-key", nil); err != nil {
			t.Fatalf("DeleteKey again: %v", err)
		}
		if _, err := kc.PurgeDeletedKey(ctx, "del-key", nil); err != nil {
			t.Fatalf("PurgeDeletedKey: %v", err)
		}
		_, err = kc.GetDeletedKey(ctx, "del-key", nil)
		sdkWantStatus(t, "GetDeletedKey after purge", err, http.StatusNotFound, "")
		_, err = kc.PurgeDeletedKey(ctx, "del-key", nil)
		sdkWantStatus(t, "PurgeDeletedKey twice", err, http.StatusNotFound, "")
		// The name is free again, for a new key.
		kb, newPub := createKey(t, "del-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
		if *kb.Key.KID == *orig.Key.KID || sdkSamePublicKey(newPub, pub) {
			t.Error("the key made after purge is the purged key")
		}
	})

	t.Run("BackupRestore", func(t *testing.T) {
		ctx := sdkCtx(t)
		orig, pub := createKey(t, "bk-key", azkeys.CreateKeyParameters{
			Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
			Tags: map[string]*string{"backed": to.Ptr("up")},
		})
		second, secondPub := createKey(t, "bk-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
		bk, err := kc.BackupKey(ctx, "bk-key", nil)
		if err != nil || len(bk.Value) == 0 {
			t.Fatalf("BackupKey: %d bytes, %v", len(bk.Value), err)
		}
		_, err = kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
		sdkWantStatus(t, "RestoreKey over an existing key", err, http.StatusConflict, "")
		if _, err := kc.DeleteKey(ctx, "bk-key", nil); err != nil {
			t.Fatal(err)
		}
		_, err = kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
		sdkWantStatus(t, "RestoreKey over a deleted key", err, http.StatusConflict, "")
		if _, err := kc.PurgeDeletedKey(ctx, "bk-key", nil); err != nil {
			t.Fatal(err)
		}
		res, err := kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
		if err != nil {
			t.Fatalf("RestoreKey: %v", err)
		}
		if res.Key == nil || res.Key.KID == nil || *res.Key.KID != *second.Key.KID || !sdkSamePublicKey(sdkJWKPublic(t, res.Key), secondPub) {
			t.Errorf("restored: got key %+v, want the current version %s", res.Key, *second.Key.KID)
		}
		// Both versions come back, each signing with its own key.
		signAndCheck(t, "bk-key", "", azkeys.SignatureAlgorithmRS256, secondPub, "restored current")
		signAndCheck(t, "bk-key", orig.Key.KID.Version(), azkeys.SignatureAlgorithmPS256, pub, "restored old")
		old, err := kc.GetKey(ctx, "bk-key", orig.Key.KID.Version(), nil)
		if err != nil || old.Tags["backed"] == nil {
			t.Errorf("GetKey of the restored old version: got tags %v, %v; want backed=up", old.Tags, err)
		}

		bad := slices.Clone(bk.Value)
		bad[len(bad)/2] ^= 0xff
		_, err = kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bad}, nil)
		sdkWantStatus(t, "RestoreKey of a damaged blob", err, http.StatusBadRequest, "")
		_, err = kc.BackupKey(ctx, "no-such-key", nil)
		sdkWantStatus(t, "BackupKey(no-such-key)", err, http.StatusNotFound, "KeyNotFound")
	})

	t.Run("RandomBytes", func(t *testing.T) {
		ctx := sdkCtx(t)
		seen := map[string]bool{}
		for _, n := range []int32{1, 16, 32, 128} {
			got, err := kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr(n)}, nil)
			if err != nil {
				t.Fatalf("GetRandomBytes(%d): %v", n, err)
			}
			if len(got.Value) != int(n) {
				t.Errorf("GetRandomBytes(%d): got %d bytes", n, len(got.Value))
			}
			if n >= 16 {
				if seen[string(got.Value)] {
					t.Errorf("GetRandomBytes(%d): repeated an earlier answer", n)
				}
				seen[string(got.Value)] = true
			}
		}
		again, err := kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr[int32](32)}, nil)
		if err != nil || seen[string(again.Value)] {
			t.Errorf("GetRandomBytes(32) twice: got the same bytes or %v", err)
		}
		for _, n := range []int32{0, 129} {
			_, err := kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr(n)}, nil)
			sdkWantStatus(t, fmt.Sprintf("GetRandomBytes(%d)", n), err, http.StatusBadRequest, "BadParameter")
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		ctx := sdkCtx(t)
		for _, tc := range []struct {
			name   string
			key    string
			params azkeys.CreateKeyParameters
		}{
			{"kty oct", "bad-oct", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOct), KeySize: to.Ptr[int32](256)}},
			{"RSA 1024", "bad-rsa1024", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](1024)}},
			{"EC secp256k1", "bad-p256k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}},
			{"EC key_ops encrypt", "bad-ecops", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationEncrypt)}}},
			{"name with underscore", "bad_name", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := kc.CreateKey(ctx, tc.key, tc.params, nil)
				sdkWantStatus(t, "CreateKey("+tc.key+")", err, http.StatusBadRequest, "BadParameter")
				if tc.key != "bad_name" {
					_, err = kc.GetKey(ctx, tc.key, "", nil)
					sdkWantStatus(t, "GetKey after a refused create", err, http.StatusNotFound, "KeyNotFound")
				}
			})
		}

		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.ImportKey(ctx, "bad-import", azkeys.ImportKeyParameters{Key: sdkJWKPrivate(t, small)}, nil)
		sdkWantStatus(t, "ImportKey of RSA 1024", err, http.StatusBadRequest, "BadParameter")
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		public := sdkJWKPrivate(t, ecKey)
		public.D = nil
		_, err = kc.ImportKey(ctx, "bad-import", azkeys.ImportKeyParameters{Key: public}, nil)
		sdkWantStatus(t, "ImportKey of a public JWK", err, http.StatusBadRequest, "BadParameter")
		mismatched := sdkJWKPrivate(t, ecKey)
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		mismatched.D, err = other.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.ImportKey(ctx, "bad-import", azkeys.ImportKeyParameters{Key: mismatched}, nil)
		sdkWantStatus(t, "ImportKey of a JWK whose d does not match x, y", err, http.StatusBadRequest, "BadParameter")
		_, err = kc.ImportKey(ctx, "bad-import", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeOct), K: make([]byte, 32)}}, nil)
		sdkWantStatus(t, "ImportKey of an oct JWK", err, http.StatusBadRequest, "BadParameter")

		// key_ops the key was made without are forbidden.
		createKey(t, "verify-only", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationVerify)}})
		digest := sdkDigest(t, azkeys.SignatureAlgorithmES256, "forbidden")
		_, err = kc.Sign(ctx, "verify-only", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
		sdkWantStatus(t, "Sign with a verify-only key", err, http.StatusForbidden, "")
		createKey(t, "wrap-only", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey), to.Ptr(azkeys.KeyOperationUnwrapKey)}})
		for _, op := range []struct {
			what string
			call func() error
		}{
			{"Encrypt", func() error {
				_, err := kc.Encrypt(ctx, "wrap-only", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: []byte("x")}, nil)
				return err
			}},
			{"Decrypt", func() error {
				_, err := kc.Decrypt(ctx, "wrap-only", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 256)}, nil)
				return err
			}},
			{"Sign", func() error {
				_, err := kc.Sign(ctx, "wrap-only", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest}, nil)
				return err
			}},
		} {
			sdkWantStatus(t, op.what+" with a wrap-only key", op.call(), http.StatusForbidden, "")
		}
		if _, err := kc.WrapKey(ctx, "wrap-only", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: make([]byte, 32)}, nil); err != nil {
			t.Errorf("WrapKey with a wrap-only key: %v", err)
		}

		// Algorithm and digest mistakes.
		createKey(t, "bad-alg", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)})
		_, err = kc.Sign(ctx, "bad-alg", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest}, nil)
		sdkWantStatus(t, "Sign RS256 with an EC key", err, http.StatusBadRequest, "BadParameter")
		_, err = kc.Sign(ctx, "bad-alg", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:20]}, nil)
		sdkWantStatus(t, "Sign ES256 of a 20-byte digest", err, http.StatusBadRequest, "BadParameter")
		_, err = kc.Sign(ctx, "bad-alg", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmHS256), Value: digest}, nil)
		sdkWantStatus(t, "Sign HS256", err, http.StatusBadRequest, "BadParameter")
		_, err = kc.Sign(ctx, "no-such-key", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
		sdkWantStatus(t, "Sign with no-such-key", err, http.StatusNotFound, "KeyNotFound")
		_, err = kc.Decrypt(ctx, "crypt-rsa-missing", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 256)}, nil)
		sdkWantStatus(t, "Decrypt with a missing key", err, http.StatusNotFound, "KeyNotFound")
	})

	t.Run("CertificateManagedKey", func(t *testing.T) {
		ctx := sdkCtx(t)
		rsaPolicy := sdkSelfPolicy("")
		rsaPolicy.KeyProperties = &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}
		for _, tc := range []struct {
			name   string
			policy *azcertificates.CertificatePolicy
			algs   []azkeys.SignatureAlgorithm
		}{
			{"managed-ec", sdkSelfPolicy(""), []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmES256}},
			{"managed-rsa", rsaPolicy, []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmPS256}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cert := createCert(t, tc.name, tc.policy)
				leaf, err := x509.ParseCertificate(cert.CER)
				if err != nil {
					t.Fatalf("parse CER: %v", err)
				}
				got, err := kc.GetKey(ctx, tc.name, "", nil)
				if err != nil {
					t.Fatalf("GetKey of a certificate's key: %v", err)
				}
				if got.Key == nil || got.Key.KID == nil || cert.KID == nil || string(*got.Key.KID) != string(*cert.KID) {
					t.Fatalf("GetKey: got kid %v, want the certificate's kid %v", got.Key, cert.KID)
				}
				if got.Managed == nil || !*got.Managed {
					t.Errorf("GetKey of a certificate's key: got managed %v, want true", got.Managed)
				}
				pub := sdkJWKPublic(t, got.Key)
				if !sdkSamePublicKey(pub, leaf.PublicKey) {
					t.Fatal("GetKey: the public key is not the certificate's")
				}
				if _, err := kc.GetKey(ctx, tc.name, cert.ID.Version(), nil); err != nil {
					t.Errorf("GetKey of the certificate's version: %v", err)
				}
				for _, alg := range tc.algs {
					signAndCheck(t, tc.name, "", alg, leaf.PublicKey, "signed by "+tc.name)
					signAndCheck(t, tc.name, cert.ID.Version(), alg, leaf.PublicKey, "versioned, signed by "+tc.name)
				}
				if strings.HasSuffix(tc.name, "rsa") {
					plain := []byte("to the certificate's key")
					ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, leaf.PublicKey.(*rsa.PublicKey), plain, nil)
					if err != nil {
						t.Fatal(err)
					}
					dec, err := kc.Decrypt(ctx, tc.name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: ct}, nil)
					if err != nil || !bytes.Equal(dec.Result, plain) {
						t.Errorf("Decrypt with the certificate's key: got %q, %v; want %q", dec.Result, err, plain)
					}
				}
				found := false
				vp := kc.NewListKeyPropertiesVersionsPager(tc.name, nil)
				for vp.More() {
					page, err := vp.NextPage(ctx)
					if err != nil {
						t.Fatalf("list versions of the certificate's key: %v", err)
					}
					for _, k := range page.Value {
						if k.KID != nil && *k.KID == *got.Key.KID {
							found = true
							if k.Managed == nil || !*k.Managed {
								t.Errorf("listed version %s: got managed %v, want true", *k.KID, k.Managed)
							}
						}
					}
				}
				if !found {
					t.Errorf("version %s not among the listed versions of %s", *got.Key.KID, tc.name)
				}

				// The certificate owns its key's lifecycle.
				_, err = kc.DeleteKey(ctx, tc.name, nil)
				sdkWantStatus(t, "DeleteKey of a certificate's key", err, http.StatusForbidden, "")
				_, err = kc.UpdateKey(ctx, tc.name, "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
				sdkWantStatus(t, "UpdateKey of a certificate's key", err, http.StatusForbidden, "")
				_, err = kc.CreateKey(ctx, tc.name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
				sdkWantStatus(t, "CreateKey over a certificate's key", err, http.StatusForbidden, "")
				_, err = kc.BackupKey(ctx, tc.name, nil)
				sdkWantStatus(t, "BackupKey of a certificate's key", err, http.StatusForbidden, "")
			})
		}
	})
}

// sdkKeyOps dereferences a JWK's key_ops.
func sdkKeyOps(ops []*azkeys.KeyOperation) []azkeys.KeyOperation {
	out := make([]azkeys.KeyOperation, 0, len(ops))
	for _, op := range ops {
		if op != nil {
			out = append(out, *op)
		}
	}
	return out
}
