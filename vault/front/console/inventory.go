package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/vault/access"
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
// listing's metadata only.
type objectFacts struct {
	Name                    string
	Expires                 bool
	ExpiresISO, ExpiresText string
	DaysLeft                int
	Soon, Disabled, Expired bool
	Tags                    []string
	expiresAt               time.Time
	tags                    map[string]string
}

// factsOf reads the facts of a listed object.
func factsOf(it core.ObjectItem, now time.Time) objectFacts {
	o := objectFacts{Name: it.Name, Disabled: !it.Attributes.IsEnabled(), tags: it.Tags}
	if e := it.Attributes.Expires; e != nil {
		exp := time.Unix(*e, 0).UTC()
		o.Expires, o.expiresAt = true, exp
		o.ExpiresISO, o.ExpiresText = exp.Format(time.RFC3339), exp.Format("2006-01-02")
		o.DaysLeft = int(exp.Sub(now).Hours() / 24)
		o.Soon = exp.Sub(now) < 30*24*time.Hour
		o.Expired = !exp.After(now)
	}
	keys := make([]string, 0, len(it.Tags))
	for k := range it.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o.Tags = append(o.Tags, k+"="+it.Tags[k])
	}
	return o
}

// matches reports whether the object passes the search's tag and expiry
// conditions (the name is each inventory's to match: a certificate's
// search also looks at its subject and names).
func (o objectFacts) matches(flt inventoryFilter, now time.Time) bool {
	if flt.tagKey != "" {
		if v, ok := o.tags[flt.tagKey]; !ok || (flt.tagValue != "" && v != flt.tagValue) {
			return false
		}
	}
	return flt.within <= 0 || (o.Expires && !o.expiresAt.After(now.Add(flt.within)))
}

// nameMatches reports whether the search's text is part of the name.
func (o objectFacts) nameMatches(flt inventoryFilter) bool {
	return flt.q == "" || strings.Contains(strings.ToLower(o.Name), flt.q)
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

// scan lists the objects of kind from after and keeps those the caller
// may do action on (as the API decides it for that object: a
// certificate's scope covers its managed key and secret) and for which
// row reports a match, until a page (pageRows) is full or maxScan objects
// were looked at; next resumes the scan ("" at the end of the kind).
func scan[T any](f *Front, r *http.Request, c core.Caller, kind string, action access.Action, after string,
	row func(core.ObjectItem) (T, bool, error)) (rows []T, next string, err error) {
	pol := f.Policy()
	scanned := 0
	for {
		res, err := f.ListObjects(r.Context(), c, core.ListObjectsRequest{Kind: kind, IncludePending: kind == core.KindCertificates,
			Page: core.PageRequest{Limit: 25, After: after}})
		if err != nil {
			return nil, "", err
		}
		for _, it := range res.Items {
			scanned++
			after = objname.Canonical(it.Name)
			if !pol.Allowed(c.Principal, action, objectResource(f, kind, after)) {
				continue
			}
			v, ok, err := row(it)
			if err != nil {
				return nil, "", err
			}
			if ok {
				rows = append(rows, v)
			}
			if len(rows) == pageRows || scanned >= maxScan {
				return rows, after, nil
			}
		}
		if res.Next == "" {
			return rows, "", nil
		}
		after = res.Next
	}
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
