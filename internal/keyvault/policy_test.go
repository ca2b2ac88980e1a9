package keyvault

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizeDefaults(t *testing.T) {
	p := &Policy{X509Properties: &X509Properties{Subject: "CN=www.example.com"}}
	if err := p.Normalize(); err != nil {
		t.Fatal(err)
	}
	kp := p.KeyProperties
	if kp.KeyType != "RSA" || kp.KeySize != 2048 || !*kp.Exportable || *kp.ReuseKey {
		t.Errorf("key props: got %+v", kp)
	}
	if p.ContentType() != ContentTypePKCS12 || p.X509Properties.ValidityInMonths != 12 || p.IssuerName() != IssuerSelf {
		t.Errorf("defaults: got %s %d %s", p.ContentType(), p.X509Properties.ValidityInMonths, p.IssuerName())
	}
	if len(p.LifetimeActions) != 1 || p.LifetimeActions[0].Action.ActionType != ActionAutoRenew || p.LifetimeActions[0].Trigger.LifetimePercentage != 80 {
		t.Errorf("lifetime actions: got %+v", p.LifetimeActions)
	}
	u := &Policy{X509Properties: &X509Properties{Subject: "CN=x"}, Issuer: &IssuerParameters{Name: "unknown"}}
	if err := u.Normalize(); err != nil || u.LifetimeActions[0].Action.ActionType != ActionEmailContacts || u.IssuerName() != IssuerUnknown {
		t.Errorf("Unknown issuer defaults: %v %+v", err, u.LifetimeActions)
	}
}

func TestNormalizeRejects(t *testing.T) {
	base := func() *Policy {
		return &Policy{X509Properties: &X509Properties{Subject: "CN=www.example.com"}}
	}
	tests := []struct {
		name string
		edit func(*Policy)
		want string
	}{
		{"kty DSA", func(p *Policy) { p.KeyProperties = &KeyProperties{KeyType: "DSA"} }, "kty \"DSA\""},
		{"key size 1024", func(p *Policy) { p.KeyProperties = &KeyProperties{KeyType: "RSA", KeySize: 1024} }, "2048, 3072 or 4096"},
		{"unknown curve", func(p *Policy) { p.KeyProperties = &KeyProperties{KeyType: "EC", Curve: "P-192"} }, "P-256, P-384 or P-521"},
		{"curve size mismatch", func(p *Policy) { p.KeyProperties = &KeyProperties{KeyType: "EC", Curve: "P-384", KeySize: 256} }, "does not match"},
		{"exportable HSM", func(p *Policy) { p.KeyProperties = &KeyProperties{KeyType: "EC-HSM", Exportable: boolPtr(true)} }, "HSM keys never leave"},
		{"content type", func(p *Policy) { p.SecretProperties = &SecretProperties{ContentType: "text/plain"} }, "contentType"},
		{"no names", func(p *Policy) { p.X509Properties.Subject = "" }, "give a subject"},
		{"bad subject", func(p *Policy) { p.X509Properties.Subject = "nonsense" }, "ATTRIBUTE=value"},
		{"bad dns", func(p *Policy) { p.X509Properties.SANs = &SubjectAlternativeNames{DNSNames: []string{"bad name"}} }, "not a valid DNS name"},
		{"bad eku", func(p *Policy) { p.X509Properties.EKUs = []string{"serverAuth"} }, "not an OID"},
		{"bad key usage", func(p *Policy) { p.X509Properties.KeyUsage = []string{"everything"} }, "not a key usage"},
		{"months 0..1200", func(p *Policy) { p.X509Properties.ValidityInMonths = 1201 }, "1 to 1200"},
		{"bad duration", func(p *Policy) { p.X509Properties.ValidityDuration = "6 weeks" }, "90m, 12h or 6d"},
		{"percentage 100", func(p *Policy) {
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{LifetimePercentage: 100}, Action: Action{ActionType: "AutoRenew"}}}
		}, "1 to 99"},
		{"days beyond validity", func(p *Policy) {
			p.X509Properties.ValidityDuration = "6d"
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 7}, Action: Action{ActionType: "AutoRenew"}}}
		}, "can never fire"},
		{"days past 27 a month", func(p *Policy) {
			p.X509Properties.ValidityInMonths = 12
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 325}, Action: Action{ActionType: "AutoRenew"}}}
		}, "days_before_expiry 325: use 1 to 324"},
		{"106752 days of 1200 months", func(p *Policy) {
			p.X509Properties.ValidityInMonths = 1200
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 106752}, Action: Action{ActionType: "AutoRenew"}}}
		}, "use 1 to 32400"},
		{"106752 days of 6 days", func(p *Policy) {
			p.X509Properties.ValidityDuration = "6d"
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 106752}, Action: Action{ActionType: "AutoRenew"}}}
		}, "can never fire"},
		{"max int days of 100 years", func(p *Policy) {
			p.X509Properties.ValidityDuration = "36500d"
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 1<<31 - 1}, Action: Action{ActionType: "EmailContacts"}}}
		}, "can never fire"},
		{"email days past 27 a month", func(p *Policy) {
			p.X509Properties.ValidityInMonths = 1
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 28}, Action: Action{ActionType: "EmailContacts"}}}
		}, "use 1 to 27"},
		{"negative percentage", func(p *Policy) {
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{LifetimePercentage: -80}, Action: Action{ActionType: "AutoRenew"}}}
		}, "1 to 99"},
		{"both triggers", func(p *Policy) {
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 7, LifetimePercentage: 50}, Action: Action{ActionType: "AutoRenew"}}}
		}, "not both"},
		{"unknown action", func(p *Policy) {
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{LifetimePercentage: 50}, Action: Action{ActionType: "Explode"}}}
		}, "AutoRenew or EmailContacts"},
		{"autorenew with Unknown", func(p *Policy) {
			p.Issuer = &IssuerParameters{Name: "Unknown"}
			p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{LifetimePercentage: 50}, Action: Action{ActionType: "AutoRenew"}}}
		}, "not possible with issuer Unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.edit(p)
			err := p.Normalize()
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an invalid-policy error containing %q", err, tt.want)
			}
		})
	}
}

// TestNormalizeTriggerBounds: the largest triggers Key Vault allows are
// accepted (days_before_expiry up to 27 a month of validity, percentage
// 1-99), and a duration's days stop one day short of its length.
func TestNormalizeTriggerBounds(t *testing.T) {
	for _, tc := range []struct {
		months   int
		duration string
		trig     Trigger
	}{
		{12, "", Trigger{DaysBeforeExpiry: 324}},
		{1200, "", Trigger{DaysBeforeExpiry: 32400}},
		{1200, "", Trigger{LifetimePercentage: 99}},
		{1, "", Trigger{LifetimePercentage: 1}},
		{0, "6d", Trigger{DaysBeforeExpiry: 5}},
		{0, "36h", Trigger{DaysBeforeExpiry: 1}},
		{0, "36500d", Trigger{DaysBeforeExpiry: 36499}},
	} {
		p := &Policy{X509Properties: &X509Properties{Subject: "CN=a", ValidityInMonths: tc.months, ValidityDuration: tc.duration},
			LifetimeActions: []LifetimeAction{{Trigger: tc.trig, Action: Action{ActionType: ActionAutoRenew}}}}
		if err := p.Normalize(); err != nil {
			t.Errorf("months %d, duration %q, trigger %+v: %v", tc.months, tc.duration, tc.trig, err)
		}
	}
	for _, d := range []string{"24h", "1d"} {
		p := &Policy{X509Properties: &X509Properties{Subject: "CN=a", ValidityDuration: d},
			LifetimeActions: []LifetimeAction{{Trigger: Trigger{DaysBeforeExpiry: 1}, Action: Action{ActionType: ActionAutoRenew}}}}
		if err := p.Normalize(); err == nil {
			t.Errorf("days_before_expiry 1 of %s accepted: it fires the moment the certificate is made", d)
		}
	}
}

func TestShortValidity(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "12h": 12 * time.Hour, "6d": 6 * 24 * time.Hour, "47d": 47 * 24 * time.Hour} {
		got, err := ParseValidity(in)
		if err != nil || got != want {
			t.Errorf("ParseValidity(%q): got %v %v, want %v", in, got, err, want)
		}
	}
	p := &Policy{X509Properties: &X509Properties{Subject: "CN=a", ValidityDuration: "90m"}}
	if err := p.Normalize(); err != nil {
		t.Fatal(err)
	}
	nbf := time.Unix(1_800_000_000, 0)
	if got := p.NotAfter(nbf).Sub(nbf); got != 90*time.Minute {
		t.Fatalf("NotAfter: got %v after nbf, want 90m", got)
	}
}

func TestParseSubject(t *testing.T) {
	n, err := ParseSubject(`CN=www.example.com, O="Contoso, Ltd"; OU=IT, C=US`)
	if err != nil {
		t.Fatal(err)
	}
	if n.CommonName != "www.example.com" || n.Organization[0] != "Contoso, Ltd" || n.OrganizationalUnit[0] != "IT" || n.Country[0] != "US" {
		t.Fatalf("got %+v", n)
	}
	for _, bad := range []string{"", "CN", "XX=1", `CN="unterminated`} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q): got nil error", bad)
		}
	}
}

// TestParsePolicyFromAzCLI feeds the exact output of
// `az keyvault certificate get-default-policy`.
func TestParsePolicyFromAzCLI(t *testing.T) {
	az := `{
  "attributes": null,
  "issuerParameters": {"certificateTransparency": null, "certificateType": null, "name": "Self"},
  "keyProperties": {"curve": null, "exportable": true, "keySize": 2048, "keyType": "RSA", "reuseKey": true},
  "lifetimeActions": [{"action": {"actionType": "AutoRenew"}, "trigger": {"daysBeforeExpiry": 90, "lifetimePercentage": null}}],
  "secretProperties": {"contentType": "application/x-pkcs12"},
  "x509CertificateProperties": {"ekus": null, "keyUsage": ["cRLSign", "dataEncipherment", "digitalSignature", "keyEncipherment", "keyAgreement", "keyCertSign"],
    "subject": "CN=CLIGetDefaultPolicy", "subjectAlternativeNames": null, "validityInMonths": 12}
}`
	p, err := ParsePolicy([]byte(az))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Normalize(); err != nil {
		t.Fatalf("normalize the az default policy: %v", err)
	}
	if p.IssuerName() != "Self" || p.KeyProperties.KeySize != 2048 || !p.ReuseKey() || p.X509Properties.ValidityInMonths != 12 ||
		len(p.X509Properties.KeyUsage) != 6 || p.LifetimeActions[0].Trigger.DaysBeforeExpiry != 90 || p.X509Properties.Subject != "CN=CLIGetDefaultPolicy" {
		t.Fatalf("got %+v", p)
	}
	rest := `{"key_props": {"kty": "EC", "crv": "P-384"}, "x509_props": {"subject": "CN=a", "sans": {"dns_names": ["a"]}}}`
	q, err := ParsePolicy([]byte(rest))
	if err != nil || q.KeyProperties.Curve != "P-384" || q.X509Properties.SANs.DNSNames[0] != "a" {
		t.Fatalf("REST form: %+v %v", q, err)
	}
	if _, err := ParsePolicy([]byte("[1]")); err == nil {
		t.Fatal("a JSON array: got nil error")
	}
}
