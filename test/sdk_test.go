package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"software.sslmate.com/src/go-pkcs12"
)

const (
	sdkPKCS12 = "application/x-pkcs12"
	sdkPEM    = "application/x-pem-file"
)

// sdkSelfPolicy is the policy of a Self-signed EC P-256 certificate for
// www.example.com valid for 12 months.
func sdkSelfPolicy(contentType string) *azcertificates.CertificatePolicy {
	p := &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
		KeyProperties: &azcertificates.KeyProperties{
			KeyType: to.Ptr(azcertificates.KeyTypeEC),
			Curve:   to.Ptr(azcertificates.CurveNameP256),
		},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject:                 to.Ptr("CN=www.example.com"),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("www.example.com")}},
			ValidityInMonths:        to.Ptr[int32](12),
		},
	}
	if contentType != "" {
		p.SecretProperties = &azcertificates.SecretProperties{ContentType: to.Ptr(contentType)}
	}
	return p
}

// TestSDK drives a real single-node certvaultd with the official Azure
// Key Vault Go SDKs (azcertificates, azsecrets), unchanged apart from
// challenge-resource verification being off for a 127.0.0.1 vault.
func TestSDK(t *testing.T) {
	t.Parallel()
	env := newSDKEnv(t)
	cl, sc := env.certs, env.secrets

	// createSelf creates a Self-signed certificate and waits for it.
	createSelf := func(t *testing.T, name, contentType string) azcertificates.Certificate {
		t.Helper()
		ctx := sdkCtx(t)
		if _, err := cl.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: sdkSelfPolicy(contentType)}, nil); err != nil {
			t.Fatalf("CreateCertificate(%s): %v", name, err)
		}
		if op := sdkWaitOperation(ctx, t, cl, name); *op.Status != "completed" {
			t.Fatalf("operation of %s: got status %q, want completed", name, *op.Status)
		}
		got, err := cl.GetCertificate(ctx, name, "", nil)
		if err != nil {
			t.Fatalf("GetCertificate(%s): %v", name, err)
		}
		return got.Certificate
	}

	t.Run("ChallengeScope", func(t *testing.T) {
		// Any call goes through the 401 challenge first; the credential
		// must then be asked for the vault's own resource.
		_, err := cl.GetCertificate(sdkCtx(t), "no-such-cert", "", nil)
		sdkWantStatus(t, "GetCertificate(no-such-cert)", err, http.StatusNotFound, "CertificateNotFound")
		scopes := env.cred.Scopes()
		want := env.url + "/.default"
		if len(scopes) == 0 || !slices.Contains(scopes, want) {
			t.Fatalf("token scopes: got %q, want %q", scopes, want)
		}
		// A fresh client whose first request has a body: the SDK sends it
		// without the body to elicit the challenge, then again with both.
		cred := &sdkCredential{Token: env.cluster.Token}
		fc, fs := env.clients(t, cred)
		if _, err := fs.SetSecret(sdkCtx(t), "first-call", azsecrets.SetSecretParameters{Value: to.Ptr("body")}, nil); err != nil {
			t.Fatalf("SetSecret as a client's first call: %v", err)
		}
		_, err = fc.CreateCertificate(sdkCtx(t), "first-call", azcertificates.CreateCertificateParameters{CertificatePolicy: sdkSelfPolicy("")}, nil)
		sdkWantStatus(t, "CreateCertificate over a secret's name", err, http.StatusConflict, "")
		got, err := fs.GetSecret(sdkCtx(t), "first-call", "", nil)
		if err != nil {
			t.Fatalf("GetSecret(first-call): %v", err)
		}
		if *got.Value != "body" {
			t.Fatalf("GetSecret(first-call): got %q, want %q", *got.Value, "body")
		}
		if scopes := cred.Scopes(); len(scopes) == 0 || scopes[0] != want {
			t.Fatalf("fresh client token scopes: got %q, want %q", scopes, want)
		}
		// Without a token the vault answers the challenge.
		req, err := http.NewRequest(http.MethodGet, env.url+"/secrets?api-version=7.6", nil)
		if err != nil {
			t.Fatalf("new request: %v", err)
		}
		resp, err := env.cluster.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(h, "Bearer ") ||
			!strings.Contains(h, `authorization="`) || !strings.Contains(h, `resource="`+env.url+`"`) {
			t.Fatalf("unauthenticated GET: got %d %q, want 401 with a Bearer challenge for %s", resp.StatusCode, h, env.url)
		}
	})

	t.Run("CreateSelf", func(t *testing.T) {
		ctx := sdkCtx(t)
		resp, err := cl.CreateCertificate(ctx, "www", azcertificates.CreateCertificateParameters{
			CertificatePolicy: sdkSelfPolicy(""),
			Tags:              map[string]*string{"team": to.Ptr("web")},
		}, nil)
		if err != nil {
			t.Fatalf("CreateCertificate: %v", err)
		}
		if resp.Status == nil || resp.ID == nil {
			t.Fatalf("CreateCertificate: got status %v id %v, want both", resp.Status, resp.ID)
		}
		if got, want := string(*resp.ID), env.url+"/certificates/www/pending"; got != want {
			t.Errorf("operation id: got %s, want %s", got, want)
		}
		op := sdkWaitOperation(ctx, t, cl, "www")
		if *op.Status != "completed" {
			t.Fatalf("operation: got status %q, want completed (error %v)", *op.Status, op.Error)
		}
		if op.IssuerParameters == nil || op.IssuerParameters.Name == nil || *op.IssuerParameters.Name != "Self" {
			t.Errorf("operation issuer: got %+v, want Self", op.IssuerParameters)
		}
		if op.Target == nil || !strings.HasPrefix(*op.Target, env.url+"/certificates/www") {
			t.Errorf("operation target: got %v, want %s/certificates/www", op.Target, env.url)
		}

		got, err := cl.GetCertificate(ctx, "www", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		c := got.Certificate
		leaf, err := x509.ParseCertificate(c.CER)
		if err != nil {
			t.Fatalf("parse CER: %v", err)
		}
		if leaf.Subject.CommonName != "www.example.com" || !slices.Equal(leaf.DNSNames, []string{"www.example.com"}) {
			t.Errorf("leaf: got CN %q DNS %q, want www.example.com", leaf.Subject.CommonName, leaf.DNSNames)
		}
		if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("leaf key: got %T, want EC P-256", leaf.PublicKey)
		}
		if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil ||
			!bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
			t.Errorf("leaf is not self-signed: issuer %s, signature check %v", leaf.Issuer, err)
		}
		if months := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24 / 30.4; months < 11.5 || months > 12.5 {
			t.Errorf("validity: got %s to %s, want 12 months", leaf.NotBefore, leaf.NotAfter)
		}
		sum := sha1.Sum(c.CER)
		if !bytes.Equal(c.X509Thumbprint, sum[:]) {
			t.Errorf("x5t: got %x, want SHA-1 of the CER %x", c.X509Thumbprint, sum)
		}
		if c.ID == nil || c.KID == nil || c.SID == nil {
			t.Fatalf("ids: got id %v kid %v sid %v, want all three", c.ID, c.KID, c.SID)
		}
		ver := c.ID.Version()
		if c.ID.Name() != "www" || len(ver) != 32 {
			t.Errorf("id: got %s, want %s/certificates/www/<32 hex>", *c.ID, env.url)
		}
		for _, tc := range []struct{ what, got, want string }{
			{"id", string(*c.ID), env.url + "/certificates/www/" + ver},
			{"kid", string(*c.KID), env.url + "/keys/www/" + ver},
			{"sid", string(*c.SID), env.url + "/secrets/www/" + ver},
		} {
			if tc.got != tc.want {
				t.Errorf("%s: got %s, want %s", tc.what, tc.got, tc.want)
			}
		}
		if c.Attributes == nil || c.Attributes.Enabled == nil || !*c.Attributes.Enabled ||
			c.Attributes.Expires == nil || !c.Attributes.Expires.Equal(leaf.NotAfter) ||
			c.Attributes.NotBefore == nil || !c.Attributes.NotBefore.Equal(leaf.NotBefore) ||
			c.Attributes.Created == nil || c.Attributes.RecoveryLevel == nil {
			t.Errorf("attributes: got %+v, want enabled with nbf/exp of the leaf, created and recoveryLevel", c.Attributes)
		}
		if c.Tags["team"] == nil || *c.Tags["team"] != "web" {
			t.Errorf("tags: got %v, want team=web", c.Tags)
		}
		if c.Policy == nil || c.Policy.X509CertificateProperties == nil || c.Policy.X509CertificateProperties.Subject == nil ||
			*c.Policy.X509CertificateProperties.Subject != "CN=www.example.com" {
			t.Errorf("policy: got %+v, want subject CN=www.example.com", c.Policy)
		}
		// The same version by id.
		byVer, err := cl.GetCertificate(ctx, "www", ver, nil)
		if err != nil || !bytes.Equal(byVer.CER, c.CER) {
			t.Errorf("GetCertificate(www, %s): got err %v, want the same certificate", ver, err)
		}

		pol, err := cl.GetCertificatePolicy(ctx, "www", nil)
		if err != nil {
			t.Fatalf("GetCertificatePolicy: %v", err)
		}
		if pol.IssuerParameters == nil || *pol.IssuerParameters.Name != "Self" || pol.KeyProperties == nil ||
			*pol.KeyProperties.KeyType != azcertificates.KeyTypeEC || *pol.KeyProperties.Curve != azcertificates.CurveNameP256 ||
			pol.SecretProperties == nil || *pol.SecretProperties.ContentType != sdkPKCS12 {
			t.Errorf("policy: got %+v %+v %+v, want Self EC P-256 PKCS#12", pol.IssuerParameters, pol.KeyProperties, pol.SecretProperties)
		}

		sec, err := sc.GetSecret(ctx, "www", "", nil)
		if err != nil {
			t.Fatalf("GetSecret(www): %v", err)
		}
		if sec.ContentType == nil || *sec.ContentType != sdkPKCS12 {
			t.Errorf("secret content type: got %v, want %s", sec.ContentType, sdkPKCS12)
		}
		if sec.ID == nil || string(*sec.ID) != string(*c.SID) {
			t.Errorf("secret id: got %v, want the certificate's sid %s", sec.ID, *c.SID)
		}
		if sec.KID == nil || string(*sec.KID) != string(*c.KID) {
			t.Errorf("secret kid: got %v, want the certificate's kid %s", sec.KID, *c.KID)
		}
		if sec.Managed == nil || !*sec.Managed {
			t.Errorf("secret managed: got %v, want true", sec.Managed)
		}
		pfx, err := base64.StdEncoding.DecodeString(*sec.Value)
		if err != nil {
			t.Fatalf("secret value is not base64: %v", err)
		}
		key, pcert, _, err := pkcs12.DecodeChain(pfx, "")
		if err != nil {
			t.Fatalf("decode PKCS#12: %v", err)
		}
		if !bytes.Equal(pcert.Raw, c.CER) {
			t.Errorf("PKCS#12 certificate differs from the CER")
		}
		if !sdkSamePublicKey(sdkPublicOf(t, key), leaf.PublicKey) {
			t.Errorf("PKCS#12 key does not match the certificate's public key")
		}
	})

	t.Run("CreateSelfPEM", func(t *testing.T) {
		ctx := sdkCtx(t)
		c := createSelf(t, "www-pem", sdkPEM)
		if c.ContentType != nil && *c.ContentType != sdkPEM {
			t.Errorf("certificate content type: got %s, want %s", *c.ContentType, sdkPEM)
		}
		sec, err := sc.GetSecret(ctx, "www-pem", "", nil)
		if err != nil {
			t.Fatalf("GetSecret(www-pem): %v", err)
		}
		if sec.ContentType == nil || *sec.ContentType != sdkPEM {
			t.Errorf("secret content type: got %v, want %s", sec.ContentType, sdkPEM)
		}
		key, certs := sdkParsePEM(t, *sec.Value)
		if len(certs) != 1 || !bytes.Equal(certs[0].Raw, c.CER) {
			t.Fatalf("PEM certificates: got %d, want the one CER", len(certs))
		}
		if !sdkSamePublicKey(sdkPublicOf(t, key), certs[0].PublicKey) {
			t.Errorf("PEM key does not match the certificate")
		}
	})

	t.Run("Paging", func(t *testing.T) {
		ctx := sdkCtx(t)
		want := map[string]int{}
		for i := range 30 {
			name := fmt.Sprintf("page-%02d", i)
			want[name] = 0
			if _, err := sc.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v" + name)}, nil); err != nil {
				t.Fatalf("SetSecret(%s): %v", name, err)
			}
		}
		pages := 0
		pager := sc.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list secrets page %d: %v", pages+1, err)
			}
			pages++
			if len(page.Value) > 5 {
				t.Errorf("page %d: got %d items, want at most 5", pages, len(page.Value))
			}
			for _, s := range page.Value {
				if s.ID == nil {
					t.Fatalf("page %d: item without id", pages)
				}
				if _, ok := want[s.ID.Name()]; ok {
					want[s.ID.Name()]++
				}
				if s.ID.Version() != "" {
					t.Errorf("list item id %s: want no version", *s.ID)
				}
			}
			if pages > 100 {
				t.Fatal("more than 100 pages: the nextLink does not advance")
			}
		}
		for name, n := range want {
			if n != 1 {
				t.Errorf("secret %s listed %d times, want once", name, n)
			}
		}
		if pages < 6 {
			t.Errorf("got %d pages, want at least 6 pages of 5", pages)
		}

		// Versions of one secret, also paged.
		var versions []string
		for i := range 7 {
			r, err := sc.SetSecret(ctx, "paged-versions", azsecrets.SetSecretParameters{Value: to.Ptr(fmt.Sprint(i))}, nil)
			if err != nil {
				t.Fatalf("SetSecret(paged-versions): %v", err)
			}
			versions = append(versions, r.ID.Version())
		}
		var listed []string
		vp := sc.NewListSecretPropertiesVersionsPager("paged-versions", nil)
		for vp.More() {
			page, err := vp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list versions: %v", err)
			}
			for _, s := range page.Value {
				listed = append(listed, s.ID.Version())
			}
		}
		slices.Sort(versions)
		slices.Sort(listed)
		if !slices.Equal(listed, versions) {
			t.Errorf("versions: got %v, want %v", listed, versions)
		}

		// Certificates, paged the same way.
		wantCerts := map[string]int{}
		for i := range 12 {
			name := fmt.Sprintf("pg-cert-%02d", i)
			wantCerts[name] = 0
			if _, err := cl.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: sdkSelfPolicy("")}, nil); err != nil {
				t.Fatalf("CreateCertificate(%s): %v", name, err)
			}
		}
		for _, name := range []string{"pg-cert-00", "pg-cert-11"} {
			sdkWaitOperation(ctx, t, cl, name)
		}
		cp := cl.NewListCertificatePropertiesPager(nil)
		pages = 0
		for cp.More() {
			page, err := cp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list certificates: %v", err)
			}
			pages++
			if len(page.Value) > 5 {
				t.Errorf("certificate page %d: got %d items, want at most 5", pages, len(page.Value))
			}
			for _, c := range page.Value {
				if _, ok := wantCerts[c.ID.Name()]; ok {
					wantCerts[c.ID.Name()]++
					if len(c.X509Thumbprint) != sha1.Size {
						t.Errorf("certificate %s listed with x5t %x, want a SHA-1 thumbprint", c.ID.Name(), c.X509Thumbprint)
					}
				}
			}
		}
		for name, n := range wantCerts {
			if n != 1 {
				t.Errorf("certificate %s listed %d times, want once", name, n)
			}
		}
		if pages < 3 {
			t.Errorf("got %d certificate pages, want at least 3", pages)
		}
	})

	t.Run("UpdateCertificate", func(t *testing.T) {
		ctx := sdkCtx(t)
		createSelf(t, "upd-cert", "")
		upd, err := cl.UpdateCertificate(ctx, "upd-cert", "", azcertificates.UpdateCertificateParameters{
			CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(false)},
			Tags:                  map[string]*string{"env": to.Ptr("test"), "owner": to.Ptr("sdk")},
		}, nil)
		if err != nil {
			t.Fatalf("UpdateCertificate: %v", err)
		}
		if upd.Attributes == nil || upd.Attributes.Enabled == nil || *upd.Attributes.Enabled {
			t.Errorf("update response: got attributes %+v, want enabled false", upd.Attributes)
		}
		got, err := cl.GetCertificate(ctx, "upd-cert", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		if got.Attributes == nil || got.Attributes.Enabled == nil || *got.Attributes.Enabled {
			t.Errorf("GetCertificate: got attributes %+v, want enabled false", got.Attributes)
		}
		if len(got.Tags) != 2 || got.Tags["env"] == nil || *got.Tags["env"] != "test" || got.Tags["owner"] == nil || *got.Tags["owner"] != "sdk" {
			t.Errorf("GetCertificate: got tags %v, want env=test owner=sdk", got.Tags)
		}
		// A disabled certificate's secret cannot be read.
		_, err = sc.GetSecret(ctx, "upd-cert", "", nil)
		sdkWantStatus(t, "GetSecret of a disabled certificate", err, http.StatusForbidden, "")
		if _, err := cl.UpdateCertificate(ctx, "upd-cert", "", azcertificates.UpdateCertificateParameters{
			CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(true)},
		}, nil); err != nil {
			t.Fatalf("UpdateCertificate(enable): %v", err)
		}
		if _, err := sc.GetSecret(ctx, "upd-cert", "", nil); err != nil {
			t.Errorf("GetSecret after re-enabling: %v", err)
		}
	})

	t.Run("UpdateSecret", func(t *testing.T) {
		ctx := sdkCtx(t)
		set, err := sc.SetSecret(ctx, "upd-secret", azsecrets.SetSecretParameters{Value: to.Ptr("s3"), ContentType: to.Ptr("text/plain")}, nil)
		if err != nil {
			t.Fatalf("SetSecret: %v", err)
		}
		ver := set.ID.Version()
		upd, err := sc.UpdateSecretProperties(ctx, "upd-secret", ver, azsecrets.UpdateSecretPropertiesParameters{
			SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
			Tags:             map[string]*string{"env": to.Ptr("test")},
			ContentType:      to.Ptr("application/json"),
		}, nil)
		if err != nil {
			t.Fatalf("UpdateSecretProperties: %v", err)
		}
		if upd.Attributes == nil || upd.Attributes.Enabled == nil || *upd.Attributes.Enabled || upd.Value != nil {
			t.Errorf("update response: got attributes %+v value %v, want enabled false and no value", upd.Attributes, upd.Value)
		}
		_, err = sc.GetSecret(ctx, "upd-secret", "", nil)
		sdkWantStatus(t, "GetSecret of a disabled secret", err, http.StatusForbidden, "")
		// The list shows the new properties.
		found := false
		pager := sc.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.Value {
				if s.ID.Name() != "upd-secret" {
					continue
				}
				found = true
				if s.Attributes == nil || s.Attributes.Enabled == nil || *s.Attributes.Enabled || s.Tags["env"] == nil ||
					*s.Tags["env"] != "test" || s.ContentType == nil || *s.ContentType != "application/json" {
					t.Errorf("listed: got %+v tags %v content type %v, want disabled env=test application/json", s.Attributes, s.Tags, s.ContentType)
				}
			}
		}
		if !found {
			t.Error("upd-secret not listed")
		}
		if _, err := sc.UpdateSecretProperties(ctx, "upd-secret", "", azsecrets.UpdateSecretPropertiesParameters{
			SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(true)},
		}, nil); err != nil {
			t.Fatalf("UpdateSecretProperties(enable): %v", err)
		}
		got, err := sc.GetSecret(ctx, "upd-secret", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
		if *got.Value != "s3" || got.Tags["env"] == nil || *got.Tags["env"] != "test" || *got.ContentType != "application/json" ||
			got.Attributes.Enabled == nil || !*got.Attributes.Enabled {
			t.Errorf("GetSecret: got value %q tags %v content type %q attributes %+v", *got.Value, got.Tags, *got.ContentType, got.Attributes)
		}
		// A certificate's managed secret cannot be changed through the secrets API.
		_, err = sc.UpdateSecretProperties(ctx, "www", "", azsecrets.UpdateSecretPropertiesParameters{Tags: map[string]*string{"x": to.Ptr("y")}}, nil)
		sdkWantStatus(t, "UpdateSecretProperties of a managed secret", err, http.StatusForbidden, "")
	})

	t.Run("DeleteRecoverPurgeCertificate", func(t *testing.T) {
		ctx := sdkCtx(t)
		orig := createSelf(t, "del-cert", "")
		del, err := cl.DeleteCertificate(ctx, "del-cert", nil)
		if err != nil {
			t.Fatalf("DeleteCertificate: %v", err)
		}
		if del.RecoveryID == nil || *del.RecoveryID != env.url+"/deletedcertificates/del-cert" ||
			del.DeletedDate == nil || del.ScheduledPurgeDate == nil || !del.ScheduledPurgeDate.After(*del.DeletedDate) {
			t.Errorf("deleted bundle: got recoveryId %v deleted %v purge %v", del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate)
		}
		if !bytes.Equal(del.CER, orig.CER) {
			t.Errorf("deleted bundle: CER differs from the certificate's")
		}
		gd, err := cl.GetDeletedCertificate(ctx, "del-cert", nil)
		if err != nil {
			t.Fatalf("GetDeletedCertificate: %v", err)
		}
		if gd.ID == nil || gd.ID.Name() != "del-cert" || gd.RecoveryID == nil {
			t.Errorf("GetDeletedCertificate: got id %v recoveryId %v", gd.ID, gd.RecoveryID)
		}
		_, err = cl.GetCertificate(ctx, "del-cert", "", nil)
		sdkWantStatus(t, "GetCertificate of a deleted certificate", err, http.StatusNotFound, "CertificateNotFound")
		_, err = sc.GetSecret(ctx, "del-cert", "", nil)
		sdkWantStatus(t, "GetSecret of a deleted certificate", err, http.StatusNotFound, "")
		_, err = cl.CreateCertificate(ctx, "del-cert", azcertificates.CreateCertificateParameters{CertificatePolicy: sdkSelfPolicy("")}, nil)
		sdkWantStatus(t, "CreateCertificate over a deleted certificate", err, http.StatusConflict, "")

		listed := false
		dp := cl.NewListDeletedCertificatePropertiesPager(nil)
		for dp.More() {
			page, err := dp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list deleted certificates: %v", err)
			}
			for _, d := range page.Value {
				if d.ID != nil && d.ID.Name() == "del-cert" {
					listed = d.RecoveryID != nil && d.DeletedDate != nil
				}
			}
		}
		if !listed {
			t.Error("del-cert not listed (with recoveryId and deletedDate) among deleted certificates")
		}

		rec, err := cl.RecoverDeletedCertificate(ctx, "del-cert", nil)
		if err != nil {
			t.Fatalf("RecoverDeletedCertificate: %v", err)
		}
		if rec.ID == nil || rec.ID.Name() != "del-cert" {
			t.Errorf("recover: got id %v", rec.ID)
		}
		got, err := cl.GetCertificate(ctx, "del-cert", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate after recover: %v", err)
		}
		if !bytes.Equal(got.CER, orig.CER) {
			t.Error("recovered certificate differs from the original")
		}
		if _, err := sc.GetSecret(ctx, "del-cert", "", nil); err != nil {
			t.Errorf("GetSecret after recover: %v", err)
		}

		if _, err := cl.DeleteCertificate(ctx, "del-cert", nil); err != nil {
			t.Fatalf("DeleteCertificate again: %v", err)
		}
		if _, err := cl.PurgeDeletedCertificate(ctx, "del-cert", nil); err != nil {
			t.Fatalf("PurgeDeletedCertificate: %v", err)
		}
		_, err = cl.GetDeletedCertificate(ctx, "del-cert", nil)
		sdkWantStatus(t, "GetDeletedCertificate after purge", err, http.StatusNotFound, "")
		// The name is free again.
		createSelf(t, "del-cert", "")
	})

	t.Run("DeleteRecoverPurgeSecret", func(t *testing.T) {
		ctx := sdkCtx(t)
		if _, err := sc.SetSecret(ctx, "del-secret", azsecrets.SetSecretParameters{Value: to.Ptr("keep me")}, nil); err != nil {
			t.Fatalf("SetSecret: %v", err)
		}
		del, err := sc.DeleteSecret(ctx, "del-secret", nil)
		if err != nil {
			t.Fatalf("DeleteSecret: %v", err)
		}
		if del.RecoveryID == nil || *del.RecoveryID != env.url+"/deletedsecrets/del-secret" || del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
			t.Errorf("deleted bundle: got recoveryId %v deleted %v purge %v", del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate)
		}
		if del.Value != nil {
			t.Errorf("deleted bundle carries the value")
		}
		if _, err := sc.GetDeletedSecret(ctx, "del-secret", nil); err != nil {
			t.Fatalf("GetDeletedSecret: %v", err)
		}
		_, err = sc.GetSecret(ctx, "del-secret", "", nil)
		sdkWantStatus(t, "GetSecret of a deleted secret", err, http.StatusNotFound, "SecretNotFound")
		_, err = sc.SetSecret(ctx, "del-secret", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		sdkWantStatus(t, "SetSecret over a deleted secret", err, http.StatusConflict, "")

		listed := false
		dp := sc.NewListDeletedSecretPropertiesPager(nil)
		for dp.More() {
			page, err := dp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list deleted secrets: %v", err)
			}
			for _, d := range page.Value {
				if d.ID != nil && d.ID.Name() == "del-secret" {
					listed = d.RecoveryID != nil
				}
			}
		}
		if !listed {
			t.Error("del-secret not listed among deleted secrets")
		}

		if _, err := sc.RecoverDeletedSecret(ctx, "del-secret", nil); err != nil {
			t.Fatalf("RecoverDeletedSecret: %v", err)
		}
		got, err := sc.GetSecret(ctx, "del-secret", "", nil)
		if err != nil {
			t.Fatalf("GetSecret after recover: %v", err)
		}
		if *got.Value != "keep me" {
			t.Errorf("recovered value: got %q, want %q", *got.Value, "keep me")
		}
		if _, err := sc.DeleteSecret(ctx, "del-secret", nil); err != nil {
			t.Fatalf("DeleteSecret again: %v", err)
		}
		if _, err := sc.PurgeDeletedSecret(ctx, "del-secret", nil); err != nil {
			t.Fatalf("PurgeDeletedSecret: %v", err)
		}
		_, err = sc.GetDeletedSecret(ctx, "del-secret", nil)
		sdkWantStatus(t, "GetDeletedSecret after purge", err, http.StatusNotFound, "")
		if _, err := sc.SetSecret(ctx, "del-secret", azsecrets.SetSecretParameters{Value: to.Ptr("again")}, nil); err != nil {
			t.Errorf("SetSecret after purge: %v", err)
		}
		// A certificate's managed secret is deleted with the certificate only.
		_, err = sc.DeleteSecret(ctx, "www", nil)
		sdkWantStatus(t, "DeleteSecret of a managed secret", err, http.StatusForbidden, "")
	})

	t.Run("ImportPEM", func(t *testing.T) {
		ctx := sdkCtx(t)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert := sdkSelfSigned(t, "imported-pem.example.com", key)
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		value := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		imp, err := cl.ImportCertificate(ctx, "imp-pem", azcertificates.ImportCertificateParameters{
			Base64EncodedCertificate: to.Ptr(value),
			CertificatePolicy: &azcertificates.CertificatePolicy{
				SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(sdkPEM)},
			},
			Tags: map[string]*string{"source": to.Ptr("pem")},
		}, nil)
		if err != nil {
			t.Fatalf("ImportCertificate(PEM): %v", err)
		}
		if !bytes.Equal(imp.CER, cert.Raw) {
			t.Error("import response: CER differs from the imported certificate")
		}
		got, err := cl.GetCertificate(ctx, "imp-pem", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		if !bytes.Equal(got.CER, cert.Raw) {
			t.Error("GetCertificate: CER differs from the imported certificate")
		}
		if got.Tags["source"] == nil || *got.Tags["source"] != "pem" {
			t.Errorf("tags: got %v, want source=pem", got.Tags)
		}
		sec, err := sc.GetSecret(ctx, "imp-pem", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
		if sec.ContentType == nil || *sec.ContentType != sdkPEM {
			t.Errorf("secret content type: got %v, want %s", sec.ContentType, sdkPEM)
		}
		skey, scerts := sdkParsePEM(t, *sec.Value)
		if len(scerts) == 0 || !bytes.Equal(scerts[0].Raw, cert.Raw) || !sdkSamePublicKey(sdkPublicOf(t, skey), &key.PublicKey) {
			t.Error("secret: the PEM does not hold the imported key and certificate")
		}
	})

	t.Run("ImportPKCS12", func(t *testing.T) {
		ctx := sdkCtx(t)
		ca := newSDKCA(t)
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		leaf := ca.sign(t, pkix.Name{CommonName: "imported-p12.example.com"}, []string{"imported-p12.example.com"}, &key.PublicKey)
		pfx, err := pkcs12.Modern.Encode(key, leaf, []*x509.Certificate{ca.cert}, "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		value := base64.StdEncoding.EncodeToString(pfx)
		_, err = cl.ImportCertificate(ctx, "imp-p12", azcertificates.ImportCertificateParameters{
			Base64EncodedCertificate: to.Ptr(value),
			Password:                 to.Ptr("wrong password"),
		}, nil)
		sdkWantStatus(t, "ImportCertificate with a wrong password", err, http.StatusBadRequest, "")

		imp, err := cl.ImportCertificate(ctx, "imp-p12", azcertificates.ImportCertificateParameters{
			Base64EncodedCertificate: to.Ptr(value),
			Password:                 to.Ptr("correct horse"),
		}, nil)
		if err != nil {
			t.Fatalf("ImportCertificate(PKCS#12): %v", err)
		}
		if imp.Policy == nil || imp.Policy.KeyProperties == nil || *imp.Policy.KeyProperties.KeyType != azcertificates.KeyTypeRSA ||
			imp.Policy.KeyProperties.KeySize == nil || *imp.Policy.KeyProperties.KeySize != 2048 {
			t.Errorf("import policy: got %+v, want RSA 2048 key properties", imp.Policy)
		}
		got, err := cl.GetCertificate(ctx, "imp-p12", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		if !bytes.Equal(got.CER, leaf.Raw) {
			t.Error("GetCertificate: CER differs from the imported leaf")
		}
		sec, err := sc.GetSecret(ctx, "imp-p12", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(*sec.Value)
		if err != nil {
			t.Fatalf("secret is not base64: %v", err)
		}
		skey, scert, scas, err := pkcs12.DecodeChain(raw, "")
		if err != nil {
			t.Fatalf("decode the secret's PKCS#12: %v", err)
		}
		if !bytes.Equal(scert.Raw, leaf.Raw) || !sdkSamePublicKey(sdkPublicOf(t, skey), &key.PublicKey) {
			t.Error("secret: the PKCS#12 does not hold the imported key and leaf")
		}
		if len(scas) != 1 || !bytes.Equal(scas[0].Raw, ca.cert.Raw) {
			t.Errorf("secret: got %d CA certificates, want the imported CA", len(scas))
		}
	})

	t.Run("UnknownIssuerMerge", func(t *testing.T) {
		ctx := sdkCtx(t)
		pol := &azcertificates.CertificatePolicy{
			IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Unknown")},
			KeyProperties:    &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256)},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{
				Subject:                 to.Ptr("CN=csr.example.com"),
				SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("csr.example.com")}},
				ValidityInMonths:        to.Ptr[int32](6),
			},
		}
		resp, err := cl.CreateCertificate(ctx, "csr-cert", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil)
		if err != nil {
			t.Fatalf("CreateCertificate(Unknown): %v", err)
		}
		if resp.Status == nil || *resp.Status != "inProgress" || len(resp.CSR) == 0 {
			t.Fatalf("create response: got status %v csr %d bytes, want inProgress with a CSR", resp.Status, len(resp.CSR))
		}
		op, err := cl.GetCertificateOperation(ctx, "csr-cert", nil)
		if err != nil {
			t.Fatalf("GetCertificateOperation: %v", err)
		}
		if op.Status == nil || *op.Status != "inProgress" {
			t.Fatalf("operation: got status %v, want inProgress", op.Status)
		}
		csr, err := x509.ParseCertificateRequest(op.CSR)
		if err != nil {
			t.Fatalf("parse CSR: %v", err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("CSR signature: %v", err)
		}
		if csr.Subject.CommonName != "csr.example.com" || !slices.Equal(csr.DNSNames, []string{"csr.example.com"}) {
			t.Errorf("CSR: got CN %q DNS %q, want csr.example.com", csr.Subject.CommonName, csr.DNSNames)
		}

		// A pending certificate is listed only with includePending.
		listed := func(includePending bool) bool {
			found := false
			p := cl.NewListCertificatePropertiesPager(&azcertificates.ListCertificatePropertiesOptions{IncludePending: to.Ptr(includePending)})
			for p.More() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("list certificates (includePending %v): %v", includePending, err)
				}
				for _, c := range page.Value {
					found = found || c.ID.Name() == "csr-cert"
				}
			}
			return found
		}
		if listed(false) || !listed(true) {
			t.Errorf("pending csr-cert: listed without includePending %v, with %v; want false, true", listed(false), listed(true))
		}
		_, err = cl.CreateCertificate(ctx, "csr-cert", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil)
		sdkWantStatus(t, "CreateCertificate while an operation is in progress", err, http.StatusConflict, "")

		// As in Key Vault, the pending certificate reads as the version its
		// operation will make: disabled, with the policy and no certificate,
		// the same by name and by that version's id (issue 18).
		pendingVersion := ""
		for _, v := range []string{"", "by-id"} {
			if v == "by-id" {
				v = pendingVersion
			}
			got, err := cl.GetCertificate(ctx, "csr-cert", v, nil)
			if err != nil {
				t.Fatalf("GetCertificate(csr-cert, %q) while pending: %v", v, err)
			}
			if got.ID == nil || got.ID.Version() == "" || got.Attributes == nil || got.Attributes.Enabled == nil || *got.Attributes.Enabled || got.Policy == nil || len(got.CER) != 0 {
				t.Fatalf("GetCertificate(csr-cert, %q) while pending: got id %v attributes %+v policy %v cer %d bytes; want a version id, disabled, the policy, no cer", v, got.ID, got.Attributes, got.Policy != nil, len(got.CER))
			}
			pendingVersion = got.ID.Version()
		}
		// ... and its versions list that version, disabled, once; after
		// the merge, enabled, still once.
		versions := func() map[string]bool {
			out := map[string]bool{}
			p := cl.NewListCertificatePropertiesVersionsPager("csr-cert", nil)
			for p.More() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("list csr-cert's versions: %v", err)
				}
				for _, v := range page.Value {
					if _, dup := out[v.ID.Version()]; dup || v.Attributes == nil || v.Attributes.Enabled == nil {
						t.Fatalf("versions: %s listed twice or without attributes", v.ID.Version())
					}
					out[v.ID.Version()] = *v.Attributes.Enabled
				}
			}
			return out
		}
		if vs := versions(); len(vs) != 1 || vs[pendingVersion] {
			t.Errorf("versions while pending: %v, want only %s, disabled", vs, pendingVersion)
		}

		ca := newSDKCA(t)
		leaf := ca.sign(t, csr.Subject, csr.DNSNames, csr.PublicKey)
		merged, err := cl.MergeCertificate(ctx, "csr-cert", azcertificates.MergeCertificateParameters{
			X509Certificates: [][]byte{leaf.Raw, ca.cert.Raw},
		}, nil)
		if err != nil {
			t.Fatalf("MergeCertificate: %v", err)
		}
		if !bytes.Equal(merged.CER, leaf.Raw) {
			t.Error("merge response: CER differs from the signed leaf")
		}
		if merged.ID == nil || merged.ID.Version() != pendingVersion {
			t.Errorf("merge response: got version %v, want the pending version %s", merged.ID, pendingVersion)
		}
		if done := sdkWaitOperation(ctx, t, cl, "csr-cert"); *done.Status != "completed" {
			t.Errorf("operation after merge: got %q, want completed", *done.Status)
		}
		got, err := cl.GetCertificate(ctx, "csr-cert", "", nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		if !bytes.Equal(got.CER, leaf.Raw) {
			t.Error("GetCertificate: CER differs from the signed leaf")
		}
		if vs := versions(); len(vs) != 1 || !vs[pendingVersion] {
			t.Errorf("versions after the merge: %v, want only %s, enabled", vs, pendingVersion)
		}
		sec, err := sc.GetSecret(ctx, "csr-cert", "", nil)
		if err != nil {
			t.Fatalf("GetSecret: %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(*sec.Value)
		if err != nil {
			t.Fatal(err)
		}
		key, pcert, cas, err := pkcs12.DecodeChain(raw, "")
		if err != nil {
			t.Fatalf("decode PKCS#12: %v", err)
		}
		if !bytes.Equal(pcert.Raw, leaf.Raw) || !sdkSamePublicKey(sdkPublicOf(t, key), leaf.PublicKey) {
			t.Error("secret: the key does not match the merged leaf")
		}
		if len(cas) != 1 || !bytes.Equal(cas[0].Raw, ca.cert.Raw) {
			t.Errorf("secret: got %d CA certificates, want the test CA", len(cas))
		}
		// Nothing is pending any more.
		_, err = cl.MergeCertificate(ctx, "csr-cert", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{leaf.Raw}}, nil)
		if err == nil {
			t.Error("second MergeCertificate: got no error")
		}
	})

	t.Run("CancelAndDeleteOperation", func(t *testing.T) {
		ctx := sdkCtx(t)
		pol := sdkSelfPolicy("")
		pol.IssuerParameters.Name = to.Ptr("Unknown")
		if _, err := cl.CreateCertificate(ctx, "cancel-me", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil); err != nil {
			t.Fatalf("CreateCertificate: %v", err)
		}
		upd, err := cl.UpdateCertificateOperation(ctx, "cancel-me", azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil)
		if err != nil {
			t.Fatalf("UpdateCertificateOperation(cancel): %v", err)
		}
		if upd.CancellationRequested == nil || !*upd.CancellationRequested {
			t.Errorf("cancel: got cancellation_requested %v, want true", upd.CancellationRequested)
		}
		if op := sdkWaitOperation(ctx, t, cl, "cancel-me"); *op.Status != "cancelled" {
			t.Errorf("operation after cancel: got status %q, want cancelled", *op.Status)
		}
		if _, err := cl.DeleteCertificateOperation(ctx, "cancel-me", nil); err != nil {
			t.Fatalf("DeleteCertificateOperation: %v", err)
		}
		_, err = cl.GetCertificateOperation(ctx, "cancel-me", nil)
		sdkWantStatus(t, "GetCertificateOperation after delete", err, http.StatusNotFound, "")
		// The name held only by the operation is free again.
		createSelf(t, "cancel-me", "")
	})

	t.Run("PolicyAndVersions", func(t *testing.T) {
		ctx := sdkCtx(t)
		first := createSelf(t, "ver-cert", "")
		pol, err := cl.UpdateCertificatePolicy(ctx, "ver-cert", azcertificates.CertificatePolicy{
			X509CertificateProperties: &azcertificates.X509CertificateProperties{
				Subject:                 to.Ptr("CN=v2.example.com"),
				SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("v2.example.com")}},
				ValidityInMonths:        to.Ptr[int32](3),
			},
		}, nil)
		if err != nil {
			t.Fatalf("UpdateCertificatePolicy: %v", err)
		}
		if pol.X509CertificateProperties == nil || *pol.X509CertificateProperties.Subject != "CN=v2.example.com" ||
			pol.IssuerParameters == nil || *pol.IssuerParameters.Name != "Self" {
			t.Errorf("updated policy: got %+v issuer %+v, want CN=v2.example.com and the issuer kept", pol.X509CertificateProperties, pol.IssuerParameters)
		}
		got, err := cl.GetCertificatePolicy(ctx, "ver-cert", nil)
		if err != nil || got.X509CertificateProperties == nil || *got.X509CertificateProperties.ValidityInMonths != 3 {
			t.Fatalf("GetCertificatePolicy: got %+v, %v; want validity 3 months", got.X509CertificateProperties, err)
		}
		// A create without a policy renews with the stored one.
		if _, err := cl.CreateCertificate(ctx, "ver-cert", azcertificates.CreateCertificateParameters{}, nil); err != nil {
			t.Fatalf("CreateCertificate (renew): %v", err)
		}
		sdkWaitOperation(ctx, t, cl, "ver-cert")
		second, err := cl.GetCertificate(ctx, "ver-cert", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(second.CER)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Subject.CommonName != "v2.example.com" || second.ID.Version() == first.ID.Version() {
			t.Errorf("renewed: got CN %q version %s, want v2.example.com in a new version", leaf.Subject.CommonName, second.ID.Version())
		}
		old, err := cl.GetCertificate(ctx, "ver-cert", first.ID.Version(), nil)
		if err != nil || !bytes.Equal(old.CER, first.CER) {
			t.Errorf("GetCertificate(first version): err %v, want the first CER", err)
		}
		var versions []string
		vp := cl.NewListCertificatePropertiesVersionsPager("ver-cert", nil)
		for vp.More() {
			page, err := vp.NextPage(ctx)
			if err != nil {
				t.Fatalf("list versions: %v", err)
			}
			for _, c := range page.Value {
				versions = append(versions, c.ID.Version())
			}
		}
		want := []string{first.ID.Version(), second.ID.Version()}
		slices.Sort(want)
		slices.Sort(versions)
		if !slices.Equal(versions, want) {
			t.Errorf("versions: got %v, want %v", versions, want)
		}
		// The managed secret follows the versions.
		s1, err := sc.GetSecret(ctx, "ver-cert", first.ID.Version(), nil)
		if err != nil || string(*s1.ID) != string(*first.SID) {
			t.Errorf("GetSecret(first version): got %v, %v; want id %s", s1.ID, err, *first.SID)
		}
	})

	t.Run("BackupRestore", func(t *testing.T) {
		ctx := sdkCtx(t)
		orig := createSelf(t, "bk-cert", "")
		bk, err := cl.BackupCertificate(ctx, "bk-cert", nil)
		if err != nil || len(bk.Value) == 0 {
			t.Fatalf("BackupCertificate: %d bytes, %v", len(bk.Value), err)
		}
		_, err = cl.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: bk.Value}, nil)
		sdkWantStatus(t, "RestoreCertificate over an existing certificate", err, http.StatusConflict, "")
		if _, err := cl.DeleteCertificate(ctx, "bk-cert", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.PurgeDeletedCertificate(ctx, "bk-cert", nil); err != nil {
			t.Fatal(err)
		}
		res, err := cl.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: bk.Value}, nil)
		if err != nil {
			t.Fatalf("RestoreCertificate: %v", err)
		}
		if !bytes.Equal(res.CER, orig.CER) || res.ID == nil || *res.ID != *orig.ID {
			t.Errorf("restored: got id %v, want %s with the same CER", res.ID, *orig.ID)
		}
		if _, err := sc.GetSecret(ctx, "bk-cert", "", nil); err != nil {
			t.Errorf("GetSecret of the restored certificate: %v", err)
		}

		if _, err := sc.SetSecret(ctx, "bk-secret", azsecrets.SetSecretParameters{Value: to.Ptr("backed up")}, nil); err != nil {
			t.Fatal(err)
		}
		sb, err := sc.BackupSecret(ctx, "bk-secret", nil)
		if err != nil || len(sb.Value) == 0 {
			t.Fatalf("BackupSecret: %d bytes, %v", len(sb.Value), err)
		}
		if _, err := sc.DeleteSecret(ctx, "bk-secret", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.PurgeDeletedSecret(ctx, "bk-secret", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: sb.Value}, nil); err != nil {
			t.Fatalf("RestoreSecret: %v", err)
		}
		got, err := sc.GetSecret(ctx, "bk-secret", "", nil)
		if err != nil || *got.Value != "backed up" {
			t.Errorf("GetSecret of the restored secret: %v", err)
		}
		_, err = sc.BackupSecret(ctx, "bk-cert", nil)
		sdkWantStatus(t, "BackupSecret of a managed secret", err, http.StatusForbidden, "")
	})

	t.Run("Issuers", func(t *testing.T) {
		ctx := sdkCtx(t)
		const password = "issuer-pw-never-returned"
		set, err := cl.SetIssuer(ctx, "digi", azcertificates.SetIssuerParameters{
			Provider:    to.Ptr("DigiCert"),
			Credentials: &azcertificates.IssuerCredentials{AccountID: to.Ptr("acct-1"), Password: to.Ptr(password)},
			OrganizationDetails: &azcertificates.OrganizationDetails{
				ID: to.Ptr("org-1"),
				AdminContacts: []*azcertificates.AdministratorContact{{
					FirstName: to.Ptr("Ada"), LastName: to.Ptr("Lovelace"), Email: to.Ptr("ada@example.com"), Phone: to.Ptr("555-0100"),
				}},
			},
			Attributes: &azcertificates.IssuerAttributes{Enabled: to.Ptr(true)},
		}, nil)
		if err != nil {
			t.Fatalf("SetIssuer: %v", err)
		}
		if set.ID == nil || *set.ID != env.url+"/certificates/issuers/digi" {
			t.Errorf("SetIssuer id: got %v, want %s/certificates/issuers/digi", set.ID, env.url)
		}
		got, err := cl.GetIssuer(ctx, "digi", nil)
		if err != nil {
			t.Fatalf("GetIssuer: %v", err)
		}
		if got.Provider == nil || *got.Provider != "DigiCert" {
			t.Errorf("provider: got %v, want DigiCert", got.Provider)
		}
		if got.Credentials == nil || got.Credentials.AccountID == nil || *got.Credentials.AccountID != "acct-1" {
			t.Errorf("credentials: got %+v, want account_id acct-1", got.Credentials)
		}
		if got.Credentials != nil && got.Credentials.Password != nil {
			t.Errorf("credentials: the password was returned")
		}
		od := got.OrganizationDetails
		if od == nil || od.ID == nil || *od.ID != "org-1" || len(od.AdminContacts) != 1 || od.AdminContacts[0].Email == nil ||
			*od.AdminContacts[0].Email != "ada@example.com" || *od.AdminContacts[0].FirstName != "Ada" {
			t.Errorf("org details: got %+v, want org-1 with admin ada@example.com", od)
		}
		if got.Attributes == nil || got.Attributes.Enabled == nil || !*got.Attributes.Enabled || got.Attributes.Created == nil || got.Attributes.Updated == nil {
			t.Errorf("attributes: got %+v, want enabled with created and updated", got.Attributes)
		}

		up, err := cl.UpdateIssuer(ctx, "digi", azcertificates.UpdateIssuerParameters{
			Credentials: &azcertificates.IssuerCredentials{AccountID: to.Ptr("acct-2")},
			Attributes:  &azcertificates.IssuerAttributes{Enabled: to.Ptr(false)},
		}, nil)
		if err != nil {
			t.Fatalf("UpdateIssuer: %v", err)
		}
		if up.Credentials == nil || *up.Credentials.AccountID != "acct-2" || up.Credentials.Password != nil ||
			up.Attributes == nil || *up.Attributes.Enabled || up.OrganizationDetails == nil || *up.OrganizationDetails.ID != "org-1" {
			t.Errorf("UpdateIssuer: got credentials %+v attributes %+v org %+v", up.Credentials, up.Attributes, up.OrganizationDetails)
		}

		found := false
		pager := cl.NewListIssuerPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list issuers: %v", err)
			}
			for _, it := range page.Value {
				if it.ID != nil && *it.ID == env.url+"/certificates/issuers/digi" {
					found = true
					if it.Provider == nil || *it.Provider != "DigiCert" {
						t.Errorf("listed provider: got %v, want DigiCert", it.Provider)
					}
				}
			}
		}
		if !found {
			t.Error("issuer digi not listed")
		}

		del, err := cl.DeleteIssuer(ctx, "digi", nil)
		if err != nil {
			t.Fatalf("DeleteIssuer: %v", err)
		}
		if del.Provider == nil || *del.Provider != "DigiCert" {
			t.Errorf("DeleteIssuer: got provider %v, want DigiCert", del.Provider)
		}
		_, err = cl.GetIssuer(ctx, "digi", nil)
		sdkWantStatus(t, "GetIssuer after delete", err, http.StatusNotFound, "")
		if env.wire.Seen(password) {
			t.Error("the issuer password appeared in a response body")
		}
	})

	t.Run("Contacts", func(t *testing.T) {
		ctx := sdkCtx(t)
		_, err := cl.GetContacts(ctx, nil)
		sdkWantStatus(t, "GetContacts before any are set", err, http.StatusNotFound, "")
		want := []*azcertificates.Contact{
			{Email: to.Ptr("ops@example.com"), Name: to.Ptr("Ops"), Phone: to.Ptr("555-0101")},
			{Email: to.Ptr("sec@example.com")},
		}
		set, err := cl.SetContacts(ctx, azcertificates.Contacts{ContactList: want}, nil)
		if err != nil {
			t.Fatalf("SetContacts: %v", err)
		}
		if set.ID == nil || *set.ID != env.url+"/certificates/contacts" || len(set.ContactList) != 2 {
			t.Errorf("SetContacts: got id %v and %d contacts", set.ID, len(set.ContactList))
		}
		got, err := cl.GetContacts(ctx, nil)
		if err != nil {
			t.Fatalf("GetContacts: %v", err)
		}
		if len(got.ContactList) != 2 || *got.ContactList[0].Email != "ops@example.com" || *got.ContactList[0].Name != "Ops" ||
			*got.ContactList[0].Phone != "555-0101" || *got.ContactList[1].Email != "sec@example.com" {
			t.Errorf("GetContacts: got %d contacts %+v", len(got.ContactList), got.ContactList)
		}
		del, err := cl.DeleteContacts(ctx, nil)
		if err != nil {
			t.Fatalf("DeleteContacts: %v", err)
		}
		if len(del.ContactList) != 2 {
			t.Errorf("DeleteContacts: got %d contacts, want the 2 deleted", len(del.ContactList))
		}
		_, err = cl.GetContacts(ctx, nil)
		sdkWantStatus(t, "GetContacts after delete", err, http.StatusNotFound, "")
	})

	t.Run("BadInput", func(t *testing.T) {
		ctx := sdkCtx(t)
		dsa := sdkSelfPolicy("")
		dsa.KeyProperties = &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyType("DSA"))}
		rsa1024 := sdkSelfPolicy("")
		rsa1024.KeyProperties = &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeRSA), KeySize: to.Ptr[int32](1024)}
		badCT := sdkSelfPolicy("text/plain")
		for _, tc := range []struct {
			name   string
			cert   string
			policy *azcertificates.CertificatePolicy
		}{
			{"kty DSA", "bad-dsa", dsa},
			{"RSA 1024", "bad-rsa", rsa1024},
			{"content type", "bad-ct", badCT},
			{"name with underscore", "bad_name", sdkSelfPolicy("")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := cl.CreateCertificate(ctx, tc.cert, azcertificates.CreateCertificateParameters{CertificatePolicy: tc.policy}, nil)
				sdkWantStatus(t, "CreateCertificate("+tc.cert+")", err, http.StatusBadRequest, "BadParameter")
			})
		}
		_, err := sc.SetSecret(ctx, "bad_name", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		sdkWantStatus(t, "SetSecret(bad_name)", err, http.StatusBadRequest, "BadParameter")
		_, err = cl.GetCertificate(ctx, "no-such", "", nil)
		sdkWantStatus(t, "GetCertificate(no-such)", err, http.StatusNotFound, "CertificateNotFound")
		_, err = sc.GetSecret(ctx, "no-such", "", nil)
		sdkWantStatus(t, "GetSecret(no-such)", err, http.StatusNotFound, "SecretNotFound")
		_, err = cl.GetCertificateOperation(ctx, "no-such", nil)
		sdkWantStatus(t, "GetCertificateOperation(no-such)", err, http.StatusNotFound, "")
	})
}

// sdkSelfSigned makes a self-signed leaf for dnsName with key.
func sdkSelfSigned(t *testing.T, dnsName string, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: sdkSerial(t),
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sdkParsePEM splits a PEM secret into its private key and certificates.
func sdkParsePEM(t *testing.T, s string) (any, []*x509.Certificate) {
	t.Helper()
	var key any
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatalf("parse PEM key: %v", err)
			}
			key = k
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatalf("parse PEM certificate: %v", err)
			}
			certs = append(certs, c)
		default:
			t.Fatalf("unexpected PEM block %q", b.Type)
		}
	}
	if key == nil {
		t.Fatal("the PEM holds no private key")
	}
	return key, certs
}
