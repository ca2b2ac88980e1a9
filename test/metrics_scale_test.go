package test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

// TestCertificateMetricsLimit (issue 20): /metrics counts every
// certificate in its totals by expiry window, and gives per-certificate
// series only to the --metrics-certificates expiring soonest.
func TestCertificateMetricsLimit(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--metrics-certificates", "2"}})
	n := c.Nodes[0]
	cl := c.Client(n)
	// m1 expires first (1 month: 28 to 31 days, within 90), then m4
	// (at least 119 days), m6, m12.
	for _, months := range []int{12, 1, 6, 4} {
		name := fmt.Sprintf("m%d", months)
		st, resp := dpDo(t, cl, http.MethodPost, "/certificates/"+name+"/create?api-version=7.5", map[string]any{
			"policy": map[string]any{"x509_props": map[string]any{"subject": "CN=" + name + ".example.com", "validity_months": months},
				"issuer": map[string]any{"name": "Self"}}})
		if st != http.StatusAccepted {
			t.Fatalf("create %s: %d %v", name, st, resp)
		}
	}
	resp, err := c.HTTPClient().Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	metrics := string(body)
	series := regexp.MustCompile(`(?m)^certvault_certificate_expiry_timestamp_seconds\{name="([^"]+)"\}`).FindAllStringSubmatch(metrics, -1)
	var names []string
	for _, s := range series {
		names = append(names, s[1])
	}
	if strings.Join(names, ",") != "m1,m4" {
		t.Errorf("expiry series for %v, want m1 and m4 (the two expiring soonest)", names)
	}
	for _, want := range []string{
		"certvault_certificates 4\n",
		`certvault_certificates_expiring{within_days="90"} 1` + "\n",
		"certvault_certificates_expired 0\n",
		"certvault_certificates_renewal_halted 0\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
