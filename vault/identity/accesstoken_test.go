package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"
)

func testMAC(key string) func([]byte) []byte {
	return func(b []byte) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(b)
		return m.Sum(nil)
	}
}

func testToken(t testing.TB, cl AccessClaims, now time.Time) string {
	t.Helper()
	cl.Tid, cl.Ver, cl.Jti = testTenant, "2.0", "j"
	cl.Iat, cl.Nbf, cl.Exp = now.Unix(), now.Unix(), now.Add(AccessTokenLifetime).Unix()
	tok, err := signAccessToken(cl, testMAC("k1"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAccessTokens: a token is accepted only with this vault's MAC, within
// its life, for this tenant, naming exactly one principal.
func TestAccessTokens(t *testing.T) {
	now := time.Now()
	sp := AccessClaims{Aud: "https://vault.example", Sub: testClientID, AppID: testClientID}
	tok := testToken(t, sp, now)
	if !IsAccessToken(tok) || IsAccessToken("cvt.abc.def") {
		t.Fatal("IsAccessToken does not tell the forms apart")
	}
	cl, err := parseAccessToken(tok, testMAC("k1"), testTenant, testHosts, now.Add(time.Minute))
	if err != nil || cl.AppID != testClientID || cl.Aud != "https://vault.example" {
		t.Fatalf("a good token: %+v %v", cl, err)
	}
	for name, tc := range map[string]struct {
		tok    string
		key    string
		tenant string
		at     time.Time
	}{
		"another vault's key": {tok, "k2", testTenant, now},
		"another tenant":      {tok, "k1", "other", now},
		"expired":             {tok, "k1", testTenant, now.Add(AccessTokenLifetime + time.Second)},
		"tampered":            {strings.Replace(tok, tok[len(tok)/2:len(tok)/2+1], "A", 1), "k1", testTenant, now},
		"no principal":        {testToken(t, AccessClaims{Aud: "https://vault.example"}, now), "k1", testTenant, now},
		"two principals":      {testToken(t, AccessClaims{AppID: testClientID, Agent: "a1"}, now), "k1", testTenant, now},
		"not yet valid":       {testToken(t, sp, now.Add(time.Hour)), "k1", testTenant, now},
		"another audience":    {testToken(t, AccessClaims{Aud: "https://management.azure.com", AppID: testClientID}, now), "k1", testTenant, now},
		"another host":        {testToken(t, AccessClaims{Aud: "https://other.example", AppID: testClientID}, now), "k1", testTenant, now},
		"unsigned":            {tok[:strings.LastIndexByte(tok, '.')+1], "k1", testTenant, now},
	} {
		if name == "tampered" && tc.tok == tok {
			continue // the replaced character was already an A
		}
		if _, err := parseAccessToken(tc.tok, testMAC(tc.key), tc.tenant, testHosts, tc.at); !errors.Is(err, ErrBadAccessToken) {
			t.Errorf("%s: %v, want ErrBadAccessToken", name, err)
		}
	}
}

// FuzzAccessToken: no bearer token makes the checker panic, and none is
// accepted without the vault's MAC.
func FuzzAccessToken(f *testing.F) {
	now := time.Now()
	f.Add(testToken(f, AccessClaims{Aud: "https://vault.example", AppID: testClientID}, now))
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.")
	f.Add("eyJ..")
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := parseAccessToken(tok, testMAC("k1"), testTenant, testHosts, now)
		if err != nil {
			return
		}
		if again, err := signAccessToken(cl, testMAC("k1")); err != nil || cl.Tid != testTenant || again == "" {
			t.Fatalf("accepted %q: %+v %v", tok, cl, err)
		}
	})
}
