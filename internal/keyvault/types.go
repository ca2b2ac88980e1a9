// Package keyvault holds the Azure Key Vault wire format that certvault's
// data plane speaks: the JSON shapes of certificates, policies, pending
// operations, issuers, contacts, secrets and keys, with Key Vault's field
// names, and the rules that make a certificate policy valid. It does no
// I/O and knows nothing of storage or HTTP routing. The server, the CLI
// and the tests share it; it lives under internal/, not vault/, so that
// the CLI imports no server code (cmd/certvault's TestNoServerCode).
package keyvault

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// B64URL is a byte string encoded as unpadded base64url, as Key Vault
// encodes thumbprints, backups, JWK members and signatures.
type B64URL []byte

// MarshalJSON implements json.Marshaler.
func (b B64URL) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler; padded input is accepted.
func (b *B64URL) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a base64url string: %w", err)
	}
	d, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	*b = d
	return nil
}

// Attributes are an object version's attributes; times are Unix seconds.
type Attributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created,omitempty"`
	Updated         int64  `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
}

// IsEnabled reports the enabled attribute (default true).
func (a Attributes) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// Error is the body of every error answer.
type Error struct {
	Error ErrorInfo `json:"error"`
}

// ErrorInfo is Key Vault's error: a code and a message.
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// KeyProperties are a policy's key_props.
type KeyProperties struct {
	Exportable *bool  `json:"exportable,omitempty"`
	KeyType    string `json:"kty,omitempty"`
	KeySize    int    `json:"key_size,omitempty"`
	ReuseKey   *bool  `json:"reuse_key,omitempty"`
	Curve      string `json:"crv,omitempty"`
}

// SecretProperties are a policy's secret_props.
type SecretProperties struct {
	ContentType string `json:"contentType,omitempty"`
}

// SubjectAlternativeNames are a policy's sans.
type SubjectAlternativeNames struct {
	Emails   []string `json:"emails,omitempty"`
	DNSNames []string `json:"dns_names,omitempty"`
	UPNs     []string `json:"upns,omitempty"`
}

// X509Properties are a policy's x509_props. ValidityDuration is
// certvault's extension for short-lived certificates ("90m", "12h",
// "6d"); when set it replaces ValidityInMonths.
type X509Properties struct {
	Subject          string                   `json:"subject,omitempty"`
	SANs             *SubjectAlternativeNames `json:"sans,omitempty"`
	EKUs             []string                 `json:"ekus,omitempty"`
	KeyUsage         []string                 `json:"key_usage,omitempty"`
	ValidityInMonths int                      `json:"validity_months,omitempty"`
	ValidityDuration string                   `json:"validity_duration,omitempty"`
}

// Trigger says when a lifetime action fires.
type Trigger struct {
	LifetimePercentage int `json:"lifetime_percentage,omitempty"`
	DaysBeforeExpiry   int `json:"days_before_expiry,omitempty"`
}

// Action is what a lifetime action does: AutoRenew or EmailContacts.
type Action struct {
	ActionType string `json:"action_type"`
}

// LifetimeAction is one entry of a policy's lifetime_actions.
type LifetimeAction struct {
	Trigger Trigger `json:"trigger"`
	Action  Action  `json:"action"`
}

// IssuerParameters name the issuer of a policy.
type IssuerParameters struct {
	Name                    string `json:"name,omitempty"`
	CertificateType         string `json:"cty,omitempty"`
	CertificateTransparency *bool  `json:"cert_transparency,omitempty"`
	// Profile is the ACME profile to order with (a certvault extension,
	// e.g. "shortlived"); ACME issuers only.
	Profile string `json:"profile,omitempty"`
}

// Policy is a certificate policy.
type Policy struct {
	ID               string            `json:"id,omitempty"`
	KeyProperties    *KeyProperties    `json:"key_props,omitempty"`
	SecretProperties *SecretProperties `json:"secret_props,omitempty"`
	X509Properties   *X509Properties   `json:"x509_props,omitempty"`
	LifetimeActions  []LifetimeAction  `json:"lifetime_actions,omitempty"`
	Issuer           *IssuerParameters `json:"issuer,omitempty"`
	Attributes       *Attributes       `json:"attributes,omitempty"`
}

// Certificate is a certificate bundle.
type Certificate struct {
	ID  string `json:"id"`
	Kid string `json:"kid,omitempty"`
	Sid string `json:"sid,omitempty"`
	X5t B64URL `json:"x5t,omitempty"`
	Cer []byte `json:"cer,omitempty"`
	// X5C is certvault's extension: the whole chain, leaf first (DER,
	// base64), so that the public part comes with its issuers.
	X5C         [][]byte          `json:"x5c,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  Attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Policy      *Policy           `json:"policy,omitempty"`
	// RenewalInfo is certvault's extension: the ACME CA's suggested
	// renewal window for this version (RFC 9773), when it offers one.
	RenewalInfo *RenewalWindow `json:"renewal_info,omitempty"`
	// Pending, on a version whose operation has not completed, says
	// where the operation is (the version is disabled and has no
	// certificate yet).
	Pending *PendingRef `json:"pending,omitempty"`
	// Deleted certificates add these.
	RecoveryID         string `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
}

// PendingRef points at a certificate's pending operation.
type PendingRef struct {
	ID string `json:"id"`
}

// RenewalWindow is a CA's suggested renewal window, as Unix seconds.
type RenewalWindow struct {
	Start          int64  `json:"start"`
	End            int64  `json:"end"`
	ExplanationURL string `json:"explanationURL,omitempty"`
}

// CertificateItem is an entry of a certificate list.
type CertificateItem struct {
	ID                 string            `json:"id"`
	X5t                B64URL            `json:"x5t,omitempty"`
	Attributes         Attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
}

// Operation is a certificate's pending operation.
type Operation struct {
	ID                    string            `json:"id"`
	Issuer                *IssuerParameters `json:"issuer,omitempty"`
	CSR                   []byte            `json:"csr,omitempty"`
	CancellationRequested bool              `json:"cancellation_requested"`
	Status                string            `json:"status"`
	StatusDetails         string            `json:"status_details,omitempty"`
	Error                 *ErrorInfo        `json:"error,omitempty"`
	Target                string            `json:"target,omitempty"`
	RequestID             string            `json:"request_id,omitempty"`
	// ACMEOrder is certvault's extension: the order's URL at an ACME CA,
	// for looking it up there.
	ACMEOrder string `json:"acme_order,omitempty"`
}

// Operation statuses.
const (
	StatusInProgress = "inProgress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// CreateCertificateRequest is the body of POST /certificates/{name}/create.
type CreateCertificateRequest struct {
	Policy     *Policy           `json:"policy"`
	Attributes *Attributes       `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// ImportCertificateRequest is the body of POST /certificates/{name}/import.
type ImportCertificateRequest struct {
	Value      string            `json:"value"`
	Password   string            `json:"pwd,omitempty"`
	Policy     *Policy           `json:"policy,omitempty"`
	Attributes *Attributes       `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// MergeRequest is the body of POST /certificates/{name}/pending/merge.
type MergeRequest struct {
	X5C        [][]byte          `json:"x5c"`
	Attributes *Attributes       `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// UpdateCertificateRequest is the body of PATCH /certificates/{name}/{version}.
type UpdateCertificateRequest struct {
	Policy     *Policy           `json:"policy,omitempty"`
	Attributes *Attributes       `json:"attributes,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
}

// Contact is a vault contact.
type Contact struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// Contacts is the body of /certificates/contacts.
type Contacts struct {
	ID       string    `json:"id,omitempty"`
	Contacts []Contact `json:"contacts"`
}

// IssuerCredentials are an issuer's account credentials. Password is
// write-only: it is never returned.
type IssuerCredentials struct {
	AccountID string `json:"account_id,omitempty"`
	Password  string `json:"pwd,omitempty"`
}

// AdminContact is an organisation's administrator.
type AdminContact struct {
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

// OrgDetails are an issuer's organisation details.
type OrgDetails struct {
	ID           string         `json:"id,omitempty"`
	AdminDetails []AdminContact `json:"admin_details,omitempty"`
}

// IssuerAttributes are an issuer's attributes.
type IssuerAttributes struct {
	Enabled *bool `json:"enabled,omitempty"`
	Created int64 `json:"created,omitempty"`
	Updated int64 `json:"updated,omitempty"`
}

// Issuer is an issuer bundle.
type Issuer struct {
	ID          string             `json:"id,omitempty"`
	Provider    string             `json:"provider,omitempty"`
	Credentials *IssuerCredentials `json:"credentials,omitempty"`
	OrgDetails  *OrgDetails        `json:"org_details,omitempty"`
	Attributes  *IssuerAttributes  `json:"attributes,omitempty"`
}

// IssuerItem is an entry of the issuer list.
type IssuerItem struct {
	ID       string `json:"id"`
	Provider string `json:"provider,omitempty"`
}

// Secret is a secret bundle.
type Secret struct {
	Value       string            `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  Attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	Managed     bool              `json:"managed,omitempty"`
	// Deleted secrets add these.
	RecoveryID         string `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
}

// SecretItem is an entry of a secret list.
type SecretItem struct {
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         Attributes        `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	Managed            bool              `json:"managed,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64             `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64             `json:"deletedDate,omitempty"`
}

// SetSecretRequest is the body of PUT /secrets/{name}.
type SetSecretRequest struct {
	Value       *string           `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  *Attributes       `json:"attributes,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// UpdateSecretRequest is the body of PATCH /secrets/{name}/{version}.
type UpdateSecretRequest struct {
	ContentType *string           `json:"contentType,omitempty"`
	Attributes  *Attributes       `json:"attributes,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Page is a paged list answer.
type Page[T any] struct {
	Value    []T     `json:"value"`
	NextLink *string `json:"nextLink"`
}

// Backup is the body of a backup answer and of a restore request.
type Backup struct {
	Value B64URL `json:"value"`
}

// JWK is a JSON Web Key as Key Vault returns it (public members only
// unless a private key is being imported).
type JWK struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      B64URL   `json:"n,omitempty"`
	E      B64URL   `json:"e,omitempty"`
	D      B64URL   `json:"d,omitempty"`
	DP     B64URL   `json:"dp,omitempty"`
	DQ     B64URL   `json:"dq,omitempty"`
	QI     B64URL   `json:"qi,omitempty"`
	P      B64URL   `json:"p,omitempty"`
	Q      B64URL   `json:"q,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      B64URL   `json:"x,omitempty"`
	Y      B64URL   `json:"y,omitempty"`
}

// Key is a key bundle.
type Key struct {
	Key        JWK               `json:"key"`
	Attributes Attributes        `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	Managed    bool              `json:"managed,omitempty"`
	// Deleted keys add these.
	RecoveryID         string `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64  `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64  `json:"deletedDate,omitempty"`
}
