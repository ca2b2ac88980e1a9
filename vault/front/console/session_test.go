package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func testSign(secret, ts string) string {
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte(secret + "|" + ts))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// FuzzSessionCookie: no cookie value makes the parser panic, and none is
// accepted without the signature of its secret and time.
func FuzzSessionCookie(f *testing.F) {
	f.Add("abc.1700000000." + testSign("abc", "1700000000"))
	f.Add("abc.1700000000.x")
	f.Add("..")
	f.Add("a.99999999999999999999." + testSign("a", "99999999999999999999"))
	f.Fuzz(func(t *testing.T, v string) {
		secret, _, ok := splitCookie(v, testSign)
		if !ok {
			return
		}
		parts := strings.Split(v, ".")
		if secret == "" || len(parts) != 3 || parts[2] != testSign(parts[0], parts[1]) {
			t.Fatalf("accepted %q without its signature", v)
		}
	})
}

// TestSessionCookieSealed: a sealed vault (no key to sign with) accepts no
// cookie.
func TestSessionCookieSealed(t *testing.T) {
	if _, _, ok := splitCookie("abc.1700000000.", func(string, string) string { return "" }); ok {
		t.Fatal("accepted a cookie with no key to check it")
	}
}
