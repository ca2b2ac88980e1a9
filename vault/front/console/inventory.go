package console

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
)

// What the inventories of certificates, secrets and keys share: the scan
// of a kind's objects with the API's per-object access check, the facts
// every row shows (expiry, tags, state), and the search by name, tag and
// expiry.

// badExpiring is the search's message for a bad "expiring within".
const badExpiring = "Expiring within: give a number of days from 0 to 3650."

// objectFacts is what every inventory row shows of an object's current
// version. It holds no secret material: an inventory is built from the
// catalog's metadata only.
type objectFacts struct {
	Name                    string
	Expires                 bool
	ExpiresISO, ExpiresText string
	DaysLeft                int
	Soon, Disabled, Expired bool
	Tags                    []string
	expiresAt               time.Time
}

// factsOf reads the facts of a catalog object.
func factsOf(o *catalog.Object, now time.Time) objectFacts {
	f := objectFacts{Name: o.Name, Disabled: !o.Attributes.IsEnabled()}
	if e := o.Attributes.Expires; e != nil {
		exp := time.Unix(*e, 0).UTC()
		f.Expires, f.expiresAt = true, exp
		f.ExpiresISO, f.ExpiresText = exp.Format(time.RFC3339), exp.Format("2006-01-02")
		f.DaysLeft = int(exp.Sub(now).Hours() / 24)
		f.Soon = exp.Sub(now) < 30*24*time.Hour
		f.Expired = !exp.After(now)
	}
	keys := make([]string, 0, len(o.Tags))
	for k := range o.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f.Tags = append(f.Tags, k+"="+o.Tags[k])
	}
	return f
}

// matches reports whether o passes the search: its text is part of the
// name (a certificate's subject or one of its names), its issuer's name
// contains the issuer searched for, it has the tag, and it expires
// within the days given.
// The cheap conditions come first: the names of an object are loaded
// only when they decide. An error is a broken record.
func (flt inventoryFilter) matches(o *catalog.Object, now time.Time) (bool, error) {
	if flt.tagKey != "" {
		if v, ok := o.Tags[flt.tagKey]; !ok || (flt.tagValue != "" && v != flt.tagValue) {
			return false, nil
		}
	}
	if flt.within > 0 {
		if e := o.Attributes.Expires; e == nil || time.Unix(*e, 0).After(now.Add(flt.within)) {
			return false, nil
		}
	}
	if flt.issuer != "" {
		n, err := o.Names()
		if err != nil || !strings.Contains(strings.ToLower(n.Issuer), flt.issuer) {
			return false, err
		}
	}
	return o.MatchText(flt.q)
}

// parseSearch reads the shared search fields: q (lower-cased), tag
// (KEY or KEY=VALUE) and expiring (days, 0–3650); false when expiring is
// not such a number (badExpiring says so).
func parseSearch(q url.Values) (inventoryFilter, bool) {
	flt := inventoryFilter{q: strings.ToLower(strings.TrimSpace(q.Get("q")))}
	if tag := q.Get("tag"); tag != "" {
		flt.tagKey, flt.tagValue, _ = strings.Cut(tag, "=")
	}
	if v := q.Get("expiring"); v != "" {
		days, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || days < 0 || days > 3650 {
			return flt, false
		}
		flt.within = time.Duration(days) * 24 * time.Hour
	}
	return flt, true
}

// nextPage is path with q's search and after=next ("" at the end).
func nextPage(path string, q url.Values, next string) string {
	if next == "" {
		return ""
	}
	v := url.Values{}
	for k, vs := range q {
		if k != "after" {
			v[k] = vs
		}
	}
	v.Set("after", next)
	return path + "?" + v.Encode()
}

// scan walks the catalog's objects of kind after the canonical name
// after and keeps those that match flt and that the caller may do action
// on (as the API decides it for that object: a certificate's scope
// covers its managed key and secret), making each one's row, until a
// page (pageRows) is full; next resumes the walk, "" when no further
// object matches. The catalog is in memory, so a search that matches
// little walks the whole kind in one request instead of leaving the
// reader to click through empty pages. row may still leave an object
// out (ok false).
func scan[T any](f *Front, c core.Caller, kind string, action access.Action, flt inventoryFilter, after string,
	row func(*catalog.Object) (T, bool, error)) (rows []T, next string, err error) {
	objs, err := f.Catalog.Objects(kind)
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	pol := f.Policy()
	after = objname.Canonical(after)
	for i := sort.Search(len(objs), func(i int) bool { return objs[i].Canonical > after }); i < len(objs); i++ {
		o := objs[i]
		ok, err := flt.matches(o, now)
		if err != nil {
			return nil, "", err
		}
		if !ok || !pol.Allowed(c.Principal, action, objectResource(f, kind, o.Canonical)) {
			continue
		}
		if len(rows) == pageRows {
			// One more match exists: the next page starts after the
			// last row.
			return rows, next, nil
		}
		v, ok, err := row(o)
		if err != nil {
			return nil, "", err
		}
		if ok {
			rows, next = append(rows, v), o.Canonical
		}
	}
	return rows, "", nil
}

// objectResource is the resource the API's gate checks for an object of
// kind named name (canonical): a key or secret of a certificate's name
// is that certificate's too.
func objectResource(f *Front, kind, name string) access.Resource {
	res := access.Resource{Kind: kind, Name: name}
	if kind == core.KindSecrets || kind == core.KindKeys {
		res.Certificate = f.IsCertificate(name)
	}
	return res
}
