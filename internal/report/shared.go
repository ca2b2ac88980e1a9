package report

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// sorted returns a copy of r with every list in the order the renderings
// print it, so the same report always renders byte for byte the same; r
// itself is left alone.
//
//   - certificates by name, each one's versions newest first (created,
//     then not before, then version);
//   - deliveries by certificate, then newest first, then agent and version;
//   - access grants by object, principal, role and scope;
//   - secret reads by object, then principal.
func sorted(r *Report) Report {
	s := *r
	s.Certificates = slices.Clone(r.Certificates)
	for i := range s.Certificates {
		vs := slices.Clone(s.Certificates[i].Versions)
		slices.SortStableFunc(vs, func(a, b Version) int {
			return cmp.Or(
				b.Created.Compare(a.Created),
				b.NotBefore.Compare(a.NotBefore),
				strings.Compare(a.Version, b.Version),
			)
		})
		s.Certificates[i].Versions = vs
	}
	slices.SortStableFunc(s.Certificates, func(a, b Certificate) int {
		return strings.Compare(a.Name, b.Name)
	})

	s.Deliveries = slices.Clone(r.Deliveries)
	slices.SortStableFunc(s.Deliveries, func(a, b Delivery) int {
		return cmp.Or(
			strings.Compare(a.Certificate, b.Certificate),
			b.Time.Compare(a.Time),
			strings.Compare(a.Agent, b.Agent),
			strings.Compare(a.Version, b.Version),
		)
	})

	s.Access = slices.Clone(r.Access)
	slices.SortStableFunc(s.Access, func(a, b Access) int {
		return cmp.Or(
			strings.Compare(a.Object, b.Object),
			strings.Compare(a.Principal, b.Principal),
			strings.Compare(a.Role, b.Role),
			strings.Compare(a.Scope, b.Scope),
		)
	})

	s.SecretReads = slices.Clone(r.SecretReads)
	slices.SortStableFunc(s.SecretReads, func(a, b SecretRead) int {
		return cmp.Or(
			strings.Compare(a.Object, b.Object),
			strings.Compare(a.Principal, b.Principal),
		)
	})
	return s
}

// formatTime is how both renderings print a time: RFC 3339 in UTC, or
// nothing for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
