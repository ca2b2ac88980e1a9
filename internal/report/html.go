package report

import (
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"strings"
)

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"time":   formatTime,
	"yesno":  yesNo,
	"purged": formatPurged,
}).Parse(htmlSource))

// htmlView is what the HTML template renders: the sorted report plus what
// is computed from it.
type htmlView struct {
	Report
	Summary        string
	Timeline       timeline
	AccessByObject []accessGroup
}

// accessGroup is the access grants on one object.
type accessGroup struct {
	Object string
	Grants []Access
}

// WriteHTML writes r as one self-contained HTML5 page an auditor can open
// offline in any browser: styles inline, no scripts, fonts, images or
// other external references; the expiry timeline is inline SVG. Every
// value from the report is HTML-escaped. The page has a header (vault,
// generation time, since filter, summary counts) and three sections with
// the ids rotation (rotation history and expiry timeline), deliveries and
// access (grants and secret reads). Tables are sorted deterministically
// and r is not modified.
func WriteHTML(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: write HTML: nil report")
	}
	s := sorted(r)
	v := htmlView{
		Report:         s,
		Summary:        summary(&s),
		Timeline:       layoutTimeline(s.Certificates, s.Generated),
		AccessByObject: groupAccess(s.Access),
	}
	if err := htmlTemplate.Execute(w, v); err != nil {
		return fmt.Errorf("report: write HTML: %w", err)
	}
	return nil
}

// summary is the one-line count of everything in r; secret reads count
// every read, not the (object, principal) pairs.
func summary(r *Report) string {
	versions, reads := 0, 0
	for _, c := range r.Certificates {
		versions += len(c.Versions)
	}
	for _, sr := range r.SecretReads {
		reads += sr.Count
	}
	return strings.Join([]string{
		count(len(r.Certificates), "certificate", "certificates"),
		count(versions, "version", "versions"),
		count(len(r.Deliveries), "delivery", "deliveries"),
		count(len(r.Access), "access grant", "access grants"),
		count(reads, "secret read", "secret reads"),
	}, ", ")
}

// count is n with the noun in singular or plural, as n asks.
func count(n int, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
}

// groupAccess splits grants, sorted by object, into one group per object.
func groupAccess(grants []Access) []accessGroup {
	var groups []accessGroup
	for _, a := range grants {
		if n := len(groups); n > 0 && groups[n-1].Object == a.Object {
			groups[n-1].Grants = append(groups[n-1].Grants, a)
			continue
		}
		groups = append(groups, accessGroup{Object: a.Object, Grants: []Access{a}})
	}
	return groups
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
