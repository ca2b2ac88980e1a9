package catalog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/raftstore/raftstoretest"
	"github.com/certvault/certvault/vault/core"
)

func apply(t *testing.T, st *raftstore.Store, b *raftstore.Batch) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// leaf makes a self-signed certificate's DER.
func leaf(t *testing.T, cn string, dns ...string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		DNSNames: dns, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// putCert writes certificate name's meta record (current version
// version, "" for pending), that version's record and its policy.
func putCert(t *testing.T, st *raftstore.Store, name, version, issuer string, der []byte, tags map[string]string) {
	t.Helper()
	b := &raftstore.Batch{}
	m := core.ObjectMeta{Name: name, Current: version, Tags: tags}
	if version != "" {
		b.Put(core.VerKey(core.KindCertificates, name, version), core.MustJSON(core.VersionMeta{Chain: [][]byte{der}}))
	}
	b.Put(core.MetaKey(core.KindCertificates, name), core.MustJSON(m))
	b.Put(core.PolicyKey(name), core.MustJSON(keyvault.Policy{Issuer: &keyvault.IssuerParameters{Name: issuer},
		X509Properties: &keyvault.X509Properties{Subject: "CN=" + name + ".pending"}}))
	apply(t, st, b)
}

// names returns o's names, failing t on an error.
func names(t *testing.T, o *Object) *Names {
	t.Helper()
	n, err := o.Names()
	if err != nil {
		t.Fatalf("names of %s: %v", o.Name, err)
	}
	return n
}

func byName(objs []*Object) map[string]*Object {
	out := map[string]*Object{}
	for _, o := range objs {
		out[o.Canonical] = o
	}
	return out
}

// TestCatalogFollowsTheStore checks the catalog's objects against writes
// to a real store: new, changed, pending, deleted and re-issued
// certificates, a policy's issuer, secrets without a version, and that
// objects nobody wrote keep their Object (they are not decoded again).
func TestCatalogFollowsTheStore(t *testing.T) {
	st := raftstoretest.Open(t)
	c := New(st)
	putCert(t, st, "Web-Shop", "v1", "Self", leaf(t, "shop.example.com", "shop.example.com", "www.shop.example.com"), map[string]string{"team": "a"})
	putCert(t, st, "api", "v1", "DigiCert", leaf(t, "api.example.com", "api.example.com"), nil)
	putCert(t, st, "pending-one", "", "Unknown", nil, nil)

	objs, err := c.Objects(core.KindCertificates)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(objs); got != 3 {
		t.Fatalf("%d certificates, want 3: %+v", got, objs)
	}
	if objs[0].Canonical != "api" || objs[1].Canonical != "pending-one" || objs[2].Canonical != "web-shop" {
		t.Errorf("order %s, %s, %s; want api, pending-one, web-shop", objs[0].Canonical, objs[1].Canonical, objs[2].Canonical)
	}
	shop := byName(objs)["web-shop"]
	if n := names(t, shop); shop.Name != "Web-Shop" || n.Subject != "CN=shop.example.com" || n.Issuer != "Self" || shop.Pending ||
		fmt.Sprint(n.SANs) != "[shop.example.com www.shop.example.com 10.0.0.7]" || shop.Tags["team"] != "a" {
		t.Errorf("web-shop: %+v, %+v", shop, n)
	}
	if p := byName(objs)["pending-one"]; !p.Pending || names(t, p).Subject != "CN=pending-one.pending" || names(t, p).Issuer != "Unknown" {
		t.Errorf("pending-one: %+v, want pending with the policy's subject and issuer", names(t, p))
	}
	for q, want := range map[string]bool{"": true, "web-shop": true, "www.shop": true, "10.0.0.7": true, "cn=shop": true,
		"api": false, "shop\nwww": false} {
		if got, err := shop.MatchText(q); got != want || err != nil {
			t.Errorf("web-shop MatchText(%q) = %v, %v; want %v", q, got, err, want)
		}
	}

	// Unchanged: the same slice.
	again, err := c.Objects(core.KindCertificates)
	if err != nil {
		t.Fatal(err)
	}
	if &again[0] != &objs[0] {
		t.Error("a read with nothing written made a new slice")
	}

	// A write elsewhere (a secret) leaves the certificates' slice alone.
	b := &raftstore.Batch{}
	b.Put(core.MetaKey(core.KindSecrets, "s1"), core.MustJSON(core.ObjectMeta{Name: "s1", Current: "v1", Content: "text/plain"}))
	b.Put(core.MetaKey(core.KindSecrets, "s2"), core.MustJSON(core.ObjectMeta{Name: "s2"}))
	apply(t, st, b)
	if again, err = c.Objects(core.KindCertificates); err != nil {
		t.Fatal(err)
	} else if &again[0] != &objs[0] {
		t.Error("a write to a secret made the certificates' catalog walk again")
	}
	secrets, err := c.Objects(core.KindSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 1 || secrets[0].Name != "s1" || secrets[0].ContentType != "text/plain" {
		t.Errorf("secrets %+v, want s1 only (s2 has no version)", secrets)
	}

	// Renew web-shop, change api's issuer, delete nothing yet: api and
	// web-shop are new objects, pending-one is the same one.
	putCert(t, st, "Web-Shop", "v2", "Self", leaf(t, "shop2.example.com", "shop2.example.com"), map[string]string{"team": "a"})
	pb := &raftstore.Batch{}
	pb.Put(core.PolicyKey("api"), core.MustJSON(keyvault.Policy{Issuer: &keyvault.IssuerParameters{Name: "GlobalSign"}}))
	apply(t, st, pb)
	now, err := c.Objects(core.KindCertificates)
	if err != nil {
		t.Fatal(err)
	}
	after := byName(now)
	if names(t, after["web-shop"]).Subject != "CN=shop2.example.com" {
		t.Errorf("web-shop after renewal: %+v", after["web-shop"])
	}
	if got := names(t, after["api"]).Issuer; got != "GlobalSign" {
		t.Errorf("api's issuer after its policy changed: %q, want GlobalSign", got)
	}
	if after["pending-one"] != byName(objs)["pending-one"] {
		t.Error("pending-one, not written, was loaded again")
	}

	// Soft delete and a purge.
	db := &raftstore.Batch{}
	db.Put(core.MetaKey(core.KindCertificates, "api"), core.MustJSON(core.ObjectMeta{Name: "api", Current: "v1",
		Deleted: &core.Deletion{Date: 1, ScheduledPurge: 2}}))
	db.Delete(core.MetaKey(core.KindCertificates, "pending-one"))
	apply(t, st, db)
	if now, err = c.Objects(core.KindCertificates); err != nil {
		t.Fatal(err)
	}
	if len(now) != 1 || now[0].Canonical != "web-shop" {
		t.Errorf("after deleting api and purging pending-one: %d objects, want web-shop only", len(now))
	}

	if _, err := c.Objects("widgets"); err == nil {
		t.Error("an unknown kind: nil error")
	}
}

// TestCatalogBrokenRecords checks that a record that does not decode is
// an error, not an object quietly left out: a meta record at once, a
// certificate's version record or leaf when its names are read.
func TestCatalogBrokenRecords(t *testing.T) {
	st := raftstoretest.Open(t)
	c := New(st)
	b := &raftstore.Batch{}
	b.Put(core.MetaKey(core.KindCertificates, "bad"), []byte("{not json"))
	apply(t, st, b)
	if _, err := c.Objects(core.KindCertificates); err == nil {
		t.Error("a meta record that is not JSON: nil error")
	}
	// namesErr writes the version record and the meta record naming it
	// (in one batch, as the vault does) and reads the names.
	namesErr := func(ver []byte) error {
		t.Helper()
		b := &raftstore.Batch{}
		if ver != nil {
			b.Put(core.VerKey(core.KindCertificates, "bad", "v9"), ver)
		}
		b.Put(core.MetaKey(core.KindCertificates, "bad"), core.MustJSON(core.ObjectMeta{Name: "bad", Current: "v9"}))
		apply(t, st, b)
		objs, err := c.Objects(core.KindCertificates)
		if err != nil || len(objs) != 1 {
			t.Fatalf("objects: %d, %v; want the one certificate", len(objs), err)
		}
		_, err = objs[0].Names()
		return err
	}
	if err := namesErr(nil); err == nil {
		t.Error("a meta record naming a version that has no record: nil error")
	}
	if err := namesErr([]byte("{not json")); err == nil {
		t.Error("a version record that is not JSON: nil error")
	}
	if err := namesErr(core.MustJSON(core.VersionMeta{Chain: [][]byte{[]byte("garbage")}})); err == nil {
		t.Error("a leaf that does not parse: nil error")
	}
	if err := namesErr(core.MustJSON(core.VersionMeta{Chain: [][]byte{leaf(t, "fixed")}})); err != nil {
		t.Errorf("after the repair: %v", err)
	}
}

// TestCatalogConcurrentReads reads the catalog from several goroutines
// while certificates are written (run with -race), and checks that the
// last read sees every write that completed before it.
func TestCatalogConcurrentReads(t *testing.T) {
	st := raftstoretest.Open(t)
	c := New(st)
	der := leaf(t, "x")
	const writes = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				objs, err := c.Objects(core.KindCertificates)
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(objs); i++ {
					if objs[i-1].Canonical >= objs[i].Canonical {
						errs <- fmt.Errorf("out of order: %s before %s", objs[i-1].Canonical, objs[i].Canonical)
						return
					}
				}
			}
		}()
	}
	for i := range writes {
		putCert(t, st, fmt.Sprintf("c%03d", i), "v1", "Self", der, nil)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	objs, err := c.Objects(core.KindCertificates)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != writes {
		t.Errorf("%d certificates after %d writes", len(objs), writes)
	}
}

// TestCatalogWarm checks that Warm loads a kind in the background once,
// and that a later Warm does not walk a loaded kind again.
func TestCatalogWarm(t *testing.T) {
	st := raftstoretest.Open(t)
	c := New(st)
	putCert(t, st, "warm", "v1", "Self", leaf(t, "warm.example.com"), nil)
	fail := func(err error) { t.Errorf("warm-up: %v", err) }
	c.Warm(core.KindCertificates, fail)
	loaded := func() []*Object {
		c.mu.Lock()
		defer c.mu.Unlock()
		if k := c.kinds[core.KindCertificates]; k != nil && !c.warming[core.KindCertificates] {
			return k.objects
		}
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for loaded() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Warm did not load the certificates within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := loaded()
	if len(first) != 1 || names(t, first[0]).Subject != "CN=warm.example.com" {
		t.Fatalf("warmed catalog %+v", first)
	}
	putCert(t, st, "warm2", "v1", "Self", leaf(t, "warm2.example.com"), nil)
	c.Warm(core.KindCertificates, fail)
	c.mu.Lock()
	started := c.warming[core.KindCertificates]
	c.mu.Unlock()
	if started {
		t.Error("a Warm of a loaded kind started a load")
	}
	objs, err := c.Objects(core.KindCertificates)
	if err != nil || len(objs) != 2 {
		t.Errorf("read after a write: %d objects, %v; want 2", len(objs), err)
	}
}
