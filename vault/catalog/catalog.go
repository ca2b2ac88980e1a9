// Package catalog keeps a search-ready view of the vault's objects in
// memory for the inventories: per certificate, secret or key that is not
// deleted, the facts a listing shows and searches (its name, current
// attributes, tags, content type and, for a certificate, its subject,
// subject alternative names and issuer), sorted by canonical name.
//
// It is a cache of the replicated state, not a second source of truth: a
// read first brings it up to date with what this node has applied, by
// comparing each object's storage entry index with the one its facts were
// made from, so only the objects written since the last read are decoded
// again (and a certificate's leaf parsed again). Reading an unchanged
// catalog costs one lookup of the store's last-change index. A kind is
// loaded on its first read, so a node whose inventories nobody opens pays
// nothing.
//
// It holds no secret material: no secret value, no private key, nothing
// of a certificate but its public names. Access checks are not its
// business: callers filter what it returns with the same checks the API
// makes.
package catalog

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/core"
)

// Source is the replicated state the catalog follows; *raftstore.Store
// is one. Its methods must be safe for concurrent use.
type Source interface {
	// Range walks the entries under prefix in key order as of one
	// applied index, which it returns.
	Range(prefix string, fn func(raftstore.Entry) bool) uint64
	// LastChange is the index of the last write at or under any of the
	// prefixes, never earlier than the real one.
	LastChange(prefixes ...string) uint64
	// Get returns an entry of the current state.
	Get(key string) (raftstore.Entry, bool)
}

// Object is what the catalog knows of one object. It is immutable: a
// change to the object makes a new Object.
type Object struct {
	// Name is the spelling the object was created with; Canonical is
	// the form its storage key and access checks use.
	Name, Canonical string
	// Attributes are the current version's attributes as stored (the
	// vault's recovery settings are not filled in). A certificate whose
	// first version is still being made has its creation time only.
	Attributes keyvault.Attributes
	Tags       map[string]string
	// ContentType is a secret's content type.
	ContentType string
	// X5t is a certificate's current thumbprint (empty while Pending).
	X5t keyvault.B64URL
	// Managed says the secret or key is a certificate's.
	Managed bool
	// Pending says the certificate has no version yet: its first is
	// still being made.
	Pending bool
	// RenewalDue is when the current version is planned to renew (Unix
	// seconds; 0 without a renewal plan), and RenewalHalted says the
	// renewal brake stopped the certificate's automatic renewal.
	RenewalDue    int64
	RenewalHalted bool

	// metaIndex and policyIndex are the storage entries' indexes the
	// facts were made from.
	metaIndex, policyIndex uint64

	// The names are loaded on first use (Names): a certificate's cost a
	// decode of its policy and version record and a parse of its leaf,
	// which listings and metrics never need.
	cat       *Catalog
	current   string
	namesOnce sync.Once
	names     *Names
	namesErr  error
}

// Names are what a search by text looks at besides the name.
type Names struct {
	// Subject and SANs are a certificate's current leaf's subject and
	// alternative names (DNS names, e-mail addresses, IP addresses and
	// URIs), or, while Pending, the subject its policy asks for. Issuer
	// is its policy's issuer name. Secrets and keys have none.
	Subject, Issuer string
	SANs            []string
	// text is the lower-case name, subject and SANs, each on its line.
	text string
}

// Names returns the object's names, loading them from the state the
// first time (safe for concurrent use). An error is a broken record.
func (o *Object) Names() (*Names, error) {
	o.namesOnce.Do(func() {
		n := &Names{}
		if o.cat != nil { // a certificate
			o.namesErr = o.cat.certificateNames(o, n)
		}
		n.text = strings.ToLower(strings.Join(append([]string{o.Name, n.Subject}, n.SANs...), "\n"))
		o.names = n
	})
	return o.names, o.namesErr
}

// MatchText reports whether q, lower-case, is part of the object's name,
// subject or one of its alternative names ("" matches everything).
func (o *Object) MatchText(q string) (bool, error) {
	if q == "" {
		return true, nil
	}
	n, err := o.Names()
	if err != nil {
		return false, err
	}
	return !strings.Contains(q, "\n") && strings.Contains(n.text, q), nil
}

// Catalog is the view of the objects of every kind. Its zero value is
// not usable; make one with New. It is safe for concurrent use.
type Catalog struct {
	src Source

	// mu serialises refreshes; readers get an immutable slice.
	mu    sync.Mutex
	kinds map[string]*kindState
	// warming marks the kinds a Warm is loading.
	warming map[string]bool
}

// kindState is the catalog of one kind.
type kindState struct {
	// seen is the applied index the objects reflect: the state is
	// current while the kind's LastChange is at or below it.
	seen    uint64
	objects []*Object
	// policies are the certificates' policy entries (canonical name and
	// index, in name order) as of policySeen.
	policies   []policyEntry
	policySeen uint64
}

type policyEntry struct {
	name  string
	index uint64
}

// New returns a catalog of src's objects, loaded on first use.
func New(src Source) *Catalog {
	return &Catalog{src: src, kinds: map[string]*kindState{}, warming: map[string]bool{}}
}

// Objects returns the objects of kind (core.KindCertificates,
// KindSecrets or KindKeys) that exist and are not deleted, in canonical
// name order, as of at least what the node had applied when the call
// began. Certificates include those still Pending; secrets and keys only
// those with a current version. The slice and its objects are shared:
// do not modify them.
func (c *Catalog) Objects(kind string) ([]*Object, error) {
	switch kind {
	case core.KindCertificates, core.KindSecrets, core.KindKeys:
	default:
		return nil, fmt.Errorf("catalog: unknown kind %q", kind)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.kinds[kind]
	if k == nil {
		k = &kindState{}
		c.kinds[kind] = k
	} else if c.src.LastChange(watched(kind)...) <= k.seen {
		return k.objects, nil
	}
	if err := c.refresh(kind, k); err != nil {
		return nil, err
	}
	return k.objects, nil
}

// Warm loads kind in the background when no read has loaded it yet and
// no warm-up is under way, with every object's names (the text search's
// subjects, SANs and issuers), so that the first page someone opens
// finds it ready; it returns at once. A kind loaded before is left
// alone: a warm-up never makes the catalog walk its objects again.
// onError hears of a failed load (the next read tries again and reports
// it).
func (c *Catalog) Warm(kind string, onError func(error)) {
	c.mu.Lock()
	_, loaded := c.kinds[kind]
	start := !loaded && !c.warming[kind]
	if start {
		c.warming[kind] = true
	}
	c.mu.Unlock()
	if !start {
		return
	}
	go func() {
		objs, err := c.Objects(kind)
		if err == nil {
			err = loadNames(objs)
		}
		c.mu.Lock()
		delete(c.warming, kind)
		c.mu.Unlock()
		if err != nil {
			onError(err)
		}
	}()
}

// watched are the prefixes whose writes change a kind's facts: its meta
// records, and a certificate's policy (the issuer, a pending subject).
// A version's own record never changes what the catalog keeps of it,
// and a new current version rewrites the meta record.
func watched(kind string) []string {
	if kind == core.KindCertificates {
		return []string{metaPrefix(kind), policyPrefix}
	}
	return []string{metaPrefix(kind)}
}

const policyPrefix = "policy/certificates/"

func metaPrefix(kind string) string { return "meta/" + kind + "/" }

// refresh brings k up to date: every meta record is walked in order
// beside the previous objects, and only those whose entries moved are
// decoded again.
func (c *Catalog) refresh(kind string, k *kindState) error {
	seen := ^uint64(0)
	if kind == core.KindCertificates {
		if c.src.LastChange(policyPrefix) > k.policySeen || k.policies == nil {
			var ps []policyEntry
			idx := c.src.Range(policyPrefix, func(e raftstore.Entry) bool {
				ps = append(ps, policyEntry{name: strings.TrimPrefix(e.Key, policyPrefix), index: e.Index})
				return true
			})
			if ps == nil {
				ps = []policyEntry{}
			}
			k.policies, k.policySeen = ps, idx
		}
		seen = k.policySeen
	}
	prefix := metaPrefix(kind)
	// The walk keeps the objects whose entries did not move and notes
	// the others, which are loaded after it, in parallel when there are
	// many (a kind's first load).
	type todo struct {
		at          int
		e           raftstore.Entry
		policyIndex uint64
	}
	var load []todo
	objects := make([]*Object, 0, len(k.objects))
	old, pol := k.objects, k.policies
	idx := c.src.Range(prefix, func(e raftstore.Entry) bool {
		name := strings.TrimPrefix(e.Key, prefix)
		for len(old) > 0 && old[0].Canonical < name {
			old = old[1:]
		}
		var policyIndex uint64
		if kind == core.KindCertificates {
			for len(pol) > 0 && pol[0].name < name {
				pol = pol[1:]
			}
			if len(pol) > 0 && pol[0].name == name {
				policyIndex = pol[0].index
			}
		}
		if len(old) > 0 && old[0].Canonical == name && old[0].metaIndex == e.Index && old[0].policyIndex == policyIndex {
			objects = append(objects, old[0])
		} else {
			load = append(load, todo{at: len(objects), e: e, policyIndex: policyIndex})
			objects = append(objects, nil)
		}
		return true
	})
	if err := parallel(len(load), func(i int) error {
		t := load[i]
		o, err := c.load(kind, strings.TrimPrefix(t.e.Key, prefix), t.e, t.policyIndex)
		objects[t.at] = o
		return err
	}); err != nil {
		return err
	}
	// Deleted objects (and secrets or keys without a version) load as
	// nil.
	objects = slices.DeleteFunc(objects, func(o *Object) bool { return o == nil })
	k.objects, k.seen = objects, min(seen, idx)
	return nil
}

// loadNames loads the names of objs, in parallel over the CPUs.
func loadNames(objs []*Object) error {
	return parallel(len(objs), func(i int) error {
		_, err := objs[i].Names()
		return err
	})
}

// parallel calls fn for 0..n-1 over up to GOMAXPROCS goroutines (one
// more per parallelLoad items) and returns the errors it met; a
// goroutine stops at its first.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), 1+n/parallelLoad)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if errs[w] = fn(i); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parallelLoad is how many objects to load make one more worker worth
// starting.
const parallelLoad = 512

// load makes the Object of the meta record e of kind's object name
// (canonical); nil when the object is deleted or (a secret or key) has
// no version.
func (c *Catalog) load(kind, name string, e raftstore.Entry, policyIndex uint64) (*Object, error) {
	var m core.ObjectMeta
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return nil, fmt.Errorf("catalog: decode %s: %w", e.Key, err)
	}
	if m.Deleted != nil || (m.Current == "" && kind != core.KindCertificates) {
		return nil, nil
	}
	o := &Object{Name: m.DisplayName(name), Canonical: name, Attributes: m.Summary, Tags: m.Tags,
		ContentType: m.Content, X5t: m.X5t, Managed: m.ManagedBy != "", Pending: m.Current == "",
		metaIndex: e.Index, policyIndex: policyIndex}
	if kind == core.KindCertificates {
		o.cat, o.current = c, m.Current
		o.RenewalHalted = m.Halted != nil
		if due, _, ok := strings.Cut(strings.TrimPrefix(m.Plan, core.SchedPrefix), "/"); ok && m.Plan != "" {
			if t, err := strconv.ParseInt(due, 10, 64); err == nil {
				o.RenewalDue = t
			}
		}
	}
	return o, nil
}

// certificateNames fills n with a certificate's subject, names and
// issuer from its policy and current leaf, as the state holds them now.
func (c *Catalog) certificateNames(o *Object, n *Names) error {
	if e, ok := c.src.Get(core.PolicyKey(o.Canonical)); ok {
		var p keyvault.Policy
		if err := json.Unmarshal(e.Value, &p); err != nil {
			return fmt.Errorf("catalog: decode %s: %w", e.Key, err)
		}
		if p.Issuer != nil {
			n.Issuer = p.Issuer.Name
		}
		if p.X509Properties != nil && o.Pending {
			n.Subject = p.X509Properties.Subject
		}
	}
	if o.Pending {
		return nil
	}
	key := core.VerKey(core.KindCertificates, o.Canonical, o.current)
	e, ok := c.src.Get(key)
	if !ok {
		// A version is written in the same batch as the meta record
		// that names it, and purged after it is no longer current.
		return fmt.Errorf("catalog: %s names version %s, which has no record %s", core.MetaKey(core.KindCertificates, o.Canonical), o.current, key)
	}
	var v core.VersionMeta
	if err := json.Unmarshal(e.Value, &v); err != nil {
		return fmt.Errorf("catalog: decode %s: %w", key, err)
	}
	if len(v.Chain) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(v.Chain[0])
	if err != nil {
		return fmt.Errorf("catalog: certificate %s version %s: %w", o.Name, o.current, err)
	}
	n.Subject = leaf.Subject.String()
	n.SANs = SANs(leaf)
	return nil
}

// SANs lists a certificate's subject alternative names: DNS names,
// e-mail addresses, IP addresses and URIs, in that order.
func SANs(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, net.IP(ip).String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}
