package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// testBadInputStrict sends input that encoding/json, the PEM decoder or
// the old checks let through, and checks that each is answered 400 with
// Key Vault's error shape and a message naming the problem, and that
// nothing was stored. Then it checks that the strictness refuses nothing
// that clients send: a charset on the JSON Content-Type, the bearer scheme
// in any case, a PEM with CRLF line ends and a merge of a chain.
func testBadInputStrict(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	hc := c.HTTPClient()
	base := n.URL()
	const v = "?api-version=7.6"

	biPutSecret(t, c, n, "strict-kept", "kept-value-before")
	keptBefore := siGet(t, hc, base+"/secrets/strict-kept"+v, "Bearer "+c.Token)

	keyPEM, certPEM := siKeyAndCert(t)
	dns := make([]string, 101)
	for i := range dns {
		dns[i] = fmt.Sprintf("h%d.example.com", i)
	}
	tags := func(n, nameLen, valueLen int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("t%02d", i)+strings.Repeat("n", nameLen)] = strings.Repeat("v", valueLen)
		}
		return m
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	policy := func(x509Props map[string]any) map[string]any {
		return map[string]any{"key_props": map[string]any{"kty": "EC"}, "x509_props": x509Props, "issuer": map[string]any{"name": "Self"}}
	}
	for _, s := range []string{"first-dup-value", "second-dup-value", "case-dup-value-1", "case-dup-value-2"} {
		testcluster.KnownSecret(s)
	}

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		// ctype is the Content-Type; "" sends application/json, "-" none.
		ctype string
		// want are words the error message must contain.
		want []string
		// absent is an object that must not exist afterwards ("" for none).
		absent string
	}{
		{name: "duplicate member", method: "PUT", path: "/secrets/st-dup1",
			body: []byte(`{"value":"first-dup-value","value":"second-dup-value"}`),
			want: []string{`member "value" is given twice at the top level`}, absent: "/secrets/st-dup1"},
		{name: "duplicate member differing in case", method: "PUT", path: "/secrets/st-dup2",
			body: []byte(`{"value":"case-dup-value-1","Value":"case-dup-value-2"}`),
			want: []string{`"value" and "Value" are the same member`}, absent: "/secrets/st-dup2"},
		{name: "duplicate tag", method: "PUT", path: "/secrets/st-dup3",
			body: []byte(`{"value":"v","tags":{"env":"prod","env":"dev"}}`),
			want: []string{`member "env" is given twice in tags`}, absent: "/secrets/st-dup3"},
		{name: "duplicate member deep in a policy", method: "POST", path: "/certificates/st-dup4/create",
			body: []byte(`{"policy":{"x509_props":{"subject":"CN=a.example.com","subject":"CN=b.example.com"}}}`),
			want: []string{`member "subject" is given twice in policy.x509_props`}, absent: "/certificates/st-dup4"},
		{name: "invalid UTF-8 in a value", method: "PUT", path: "/secrets/st-utf1",
			body: []byte("{\"value\":\"ab\xffcd\"}"),
			want: []string{"invalid UTF-8 in value"}, absent: "/secrets/st-utf1"},
		{name: "unpaired surrogate escape", method: "PUT", path: "/secrets/st-utf2",
			body: []byte(`{"value":"a\ud800b"}`),
			want: []string{`unpaired UTF-16 surrogate escape (\ud800) in value`}, absent: "/secrets/st-utf2"},
		{name: "invalid UTF-8 in a tag name", method: "PUT", path: "/secrets/st-utf3",
			body: []byte("{\"value\":\"v\",\"tags\":{\"e\xc3nv\":\"x\"}}"),
			want: []string{"a member name has invalid UTF-8 in tags"}, absent: "/secrets/st-utf3"},
		{name: "exp after the year 9999", method: "PUT", path: "/secrets/st-exp",
			body: js(map[string]any{"value": "v", "attributes": map[string]any{"exp": int64(253402300800)}}),
			want: []string{"attributes.exp 253402300800 is out of range", "9999-12-31T23:59:59Z"}, absent: "/secrets/st-exp"},
		{name: "nbf before 1970", method: "POST", path: "/keys/st-nbf/create",
			body: js(map[string]any{"kty": "EC", "attributes": map[string]any{"nbf": -86400}}),
			want: []string{"attributes.nbf -86400 is out of range"}, absent: "/keys/st-nbf"},
		{name: "exp out of range on an update", method: "PATCH", path: "/secrets/strict-kept",
			body: js(map[string]any{"attributes": map[string]any{"exp": int64(1) << 60}}),
			want: []string{"attributes.exp", "out of range"}},
		{name: "CN of 65 characters", method: "POST", path: "/certificates/st-cn/create",
			body: js(map[string]any{"policy": policy(map[string]any{"subject": "CN=" + strings.Repeat("c", 53) + ".example.com"})}),
			want: []string{"CN is 65 characters long; RFC 5280 allows at most 64"}, absent: "/certificates/st-cn"},
		{name: "101 SANs", method: "POST", path: "/certificates/st-san/create",
			body: js(map[string]any{"policy": policy(map[string]any{"subject": "CN=h0.example.com", "sans": map[string]any{"dns_names": dns}})}),
			want: []string{"x509_props.sans: 101 names given; at most 100"}, absent: "/certificates/st-san"},
		{name: "16 tags on a key", method: "POST", path: "/keys/st-tags1/create",
			body: js(map[string]any{"kty": "EC", "tags": tags(16, 0, 1)}),
			want: []string{"tags: 16 tags given; at most 15"}, absent: "/keys/st-tags1"},
		{name: "tag name of 257 characters", method: "PUT", path: "/secrets/st-tags2",
			body: js(map[string]any{"value": "v", "tags": tags(1, 254, 1)}),
			want: []string{"is 257 characters long; at most 256"}, absent: "/secrets/st-tags2"},
		{name: "tag value of 257 characters on a certificate", method: "POST", path: "/certificates/st-tags3/create",
			body: js(map[string]any{"policy": policy(map[string]any{"subject": "CN=t.example.com"}), "tags": tags(1, 0, 257)}),
			want: []string{`the value of tag "t00" is 257 characters long; at most 256`}, absent: "/certificates/st-tags3"},
		{name: "PEM import with trailing garbage", method: "POST", path: "/certificates/st-pem1/import",
			body: js(map[string]any{"value": keyPEM + certPEM + "trailing garbage\n"}),
			want: []string{"text outside a PEM block"}, absent: "/certificates/st-pem1"},
		{name: "PEM import with a truncated certificate", method: "POST", path: "/certificates/st-pem2/import",
			body: js(map[string]any{"value": keyPEM + certPEM + certPEM[:len(certPEM)/2]}),
			want: []string{"has no -----END line"}, absent: "/certificates/st-pem2"},
		{name: "PEM import with the certificate twice", method: "POST", path: "/certificates/st-pem3/import",
			body: js(map[string]any{"value": keyPEM + certPEM + certPEM}),
			want: []string{"certificate 2 repeats certificate 1"}, absent: "/certificates/st-pem3"},
		{name: "Content-Type text/plain", method: "PUT", path: "/secrets/st-ct1", ctype: "text/plain",
			body: []byte(`{"value":"v"}`), want: []string{`Content-Type "text/plain" is not JSON`}, absent: "/secrets/st-ct1"},
		{name: "Content-Type of a form", method: "PUT", path: "/secrets/st-ct2", ctype: "application/x-www-form-urlencoded",
			body: []byte(`{"value":"v"}`), want: []string{"is not JSON", "application/json"}, absent: "/secrets/st-ct2"},
		{name: "no Content-Type", method: "POST", path: "/keys/st-ct3/create", ctype: "-",
			body: []byte(`{"kty":"EC"}`), want: []string{"no Content-Type"}, absent: "/keys/st-ct3"},
		{name: "JSON in Latin-1", method: "PUT", path: "/secrets/st-ct4", ctype: "application/json; charset=iso-8859-1",
			body: []byte(`{"value":"v"}`), want: []string{`charset "iso-8859-1" is not supported`}, absent: "/secrets/st-ct4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			resp := siDo(t, hc, tc.method, base+tc.path+v, "Bearer "+c.Token, ctype, tc.body)
			code, msg := biAPIError(t, resp, http.StatusBadRequest)
			if code != "BadParameter" {
				t.Errorf("code: got %s, want BadParameter", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
			if tc.absent != "" {
				resp := siDo(t, hc, http.MethodGet, base+tc.absent+v, "Bearer "+c.Token, "", nil)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s after the refused request: got %d, want 404 (something was stored)", tc.absent, resp.StatusCode)
				}
			}
		})
	}
	// Nothing at all was stored: the refused update left the kept secret
	// as it was, and the lists hold nothing else.
	if got := siGet(t, hc, base+"/secrets/strict-kept"+v, "Bearer "+c.Token); !bytes.Equal(got, keptBefore) {
		t.Errorf("strict-kept after the refused update:\n got %s\nwant %s", got, keptBefore)
	}
	for list, want := range map[string]int{"/secrets" + v: 1, "/keys" + v: 0, "/certificates" + v + "&includePending=true": 0} {
		var page struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(siGet(t, hc, base+list, "Bearer "+c.Token), &page); err != nil {
			t.Fatalf("list %s: %v", list, err)
		}
		if len(page.Value) != want {
			t.Errorf("GET %s: got %d objects, want %d: %s", list, len(page.Value), want, page.Value)
		}
	}

	// What clients send is still accepted.
	t.Run("accepted", func(t *testing.T) {
		for _, auth := range []string{"bearer " + c.Token, "BEARER " + c.Token, "Bearer  " + c.Token + " "} {
			if got := siGet(t, hc, base+"/secrets/strict-kept"+v, auth); !bytes.Equal(got, keptBefore) {
				t.Errorf("GET with Authorization %.8q...: got %s, want the secret", auth, got)
			}
		}
		resp := siDo(t, hc, http.MethodPut, base+"/secrets/strict-charset"+v, "Bearer "+c.Token, "application/json; charset=UTF-8", []byte(`{"value":"\u00e9t\u00e9 😀","tags":{"a":"1","A-b":"2"}}`))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("PUT with charset=UTF-8: got %d, want 200", resp.StatusCode)
		}
		crlf := strings.ReplaceAll(keyPEM+"\n"+certPEM+"\n\n", "\n", "\r\n")
		resp = siDo(t, hc, http.MethodPost, base+"/certificates/strict-import/import"+v, "Bearer "+c.Token, "application/json", js(map[string]any{"value": crlf}))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("import of a PEM with CRLF line ends and blank lines: got %d, want 200", resp.StatusCode)
		}
	})

	// A merge with a certificate given twice is refused and leaves the
	// request pending; the same chain given once merges.
	t.Run("merge", func(t *testing.T) {
		cl := c.Client(n)
		create := map[string]any{"policy": map[string]any{"key_props": map[string]any{"kty": "EC"},
			"x509_props": map[string]any{"subject": "CN=merge.example.com"}, "issuer": map[string]any{"name": "Unknown"}}}
		var op struct {
			CSR []byte `json:"csr"`
		}
		if err := cl.Do(context.Background(), http.MethodPost, "/certificates/strict-merge/create", create, &op); err != nil {
			t.Fatalf("create with issuer Unknown: %v", err)
		}
		leaf, ca := siSignCSR(t, op.CSR)
		for _, x5c := range [][][]byte{{leaf, ca, ca}, {leaf, leaf}} {
			resp := siDo(t, hc, http.MethodPost, base+"/certificates/strict-merge/pending/merge"+v, "Bearer "+c.Token, "application/json", js(map[string]any{"x5c": x5c}))
			if _, msg := biAPIError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "repeats certificate") {
				t.Errorf("merge of %d certificates with a repeat: message %q does not say it repeats", len(x5c), msg)
			}
		}
		var pending struct {
			Status string `json:"status"`
		}
		if err := cl.Do(context.Background(), http.MethodGet, "/certificates/strict-merge/pending", nil, &pending); err != nil || pending.Status != "inProgress" {
			t.Fatalf("after the refused merges: got %q, %v; want the operation still inProgress", pending.Status, err)
		}
		if err := cl.Do(context.Background(), http.MethodPost, "/certificates/strict-merge/pending/merge", map[string]any{"x5c": [][]byte{leaf, ca}}, nil); err != nil {
			t.Fatalf("merge of leaf and CA: %v", err)
		}
	})
}

// siDo sends a request with the given Authorization and Content-Type
// headers ("" sends none).
func siDo(t *testing.T, hc *http.Client, method, url, auth, ctype string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	if ctype != "" && ctype != "-" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// siGet GETs url and returns the body of a 200 answer.
func siGet(t *testing.T, hc *http.Client, url, auth string) []byte {
	t.Helper()
	resp := siDo(t, hc, http.MethodGet, url, auth, "", nil)
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200: %s", url, resp.StatusCode, b.String())
	}
	return b.Bytes()
}

// siKeyAndCert returns a fresh EC key and its self-signed certificate,
// valid now, as PEM.
func siKeyAndCert(t *testing.T) (keyPEM, certPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "strict.example.com"},
		DNSNames: []string{"strict.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// siSignCSR signs a CSR (DER) with a fresh test CA and returns the leaf
// and the CA certificate (DER).
func siSignCSR(t *testing.T, csrDER []byte) (leaf, ca []byte) {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatalf("parse the pending CSR: %v", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Strict Test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ca, err = x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(ca)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, DNSNames: csr.DNSNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	leaf, err = x509.CreateCertificate(rand.Reader, tmpl, caCert, csr.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, ca
}
