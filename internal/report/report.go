// Package report holds the evidence report an auditor asks for: the wire
// type the vault answers GET /v1/report with, and its renderings as one
// self-contained HTML file, CSV and JSON. It does not gather the data
// (the vault does) and makes no network calls.
package report

import "time"

// Report is the evidence report: rotation history, where certificates
// went, and who has (and used) access. Every list is present, possibly
// empty, so a section never disappears from a rendering.
type Report struct {
	// Generated is when the vault built the report.
	Generated time.Time `json:"generated"`
	// Since limits the history sections (versions, deliveries, reads) to
	// what happened at or after it; nil means everything.
	Since *time.Time `json:"since,omitempty"`
	// Until limits the history sections to what happened before it; nil
	// means up to when the report was generated.
	Until *time.Time `json:"until,omitempty"`
	// Vault is the URL the report was asked from.
	Vault string `json:"vault"`
	// Unreachable lists the nodes whose audit trail could not be read:
	// the secret reads they served are missing from SecretReads.
	Unreachable []string `json:"unreachable_nodes,omitempty"`

	// Certificates is section (a): rotation history per certificate.
	Certificates []Certificate `json:"certificates"`
	// Deliveries is section (b): which agent installed which version.
	Deliveries []Delivery `json:"deliveries"`
	// Access is section (c), first half: who may do what to each object,
	// resolved from the role assignments.
	Access []Access `json:"access"`
	// SecretReads is section (c), second half: who actually read each
	// secret (private keys included), from the audit trail.
	SecretReads []SecretRead `json:"secret_reads"`
}

// Certificate is one certificate's rotation history.
type Certificate struct {
	// Name is the certificate's name in the vault.
	Name string `json:"name"`
	// Issuer and Subject say who issues the certificate and whom it
	// names.
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
	// AutoRenew says whether the policy renews it without a person.
	AutoRenew bool `json:"auto_renew"`
	// Versions are the certificate's versions in the period covered,
	// those purged by version retention included.
	Versions []Version `json:"versions"`
}

// Version is one certificate version.
type Version struct {
	// Version is the version's identifier.
	Version string `json:"version"`
	// Serial and Thumbprint identify the X.509 certificate of the version.
	Serial     string `json:"serial"`
	Thumbprint string `json:"thumbprint"`
	// Created is when the vault stored the version.
	Created time.Time `json:"created"`
	// NotBefore and Expires bound the certificate's validity.
	NotBefore time.Time `json:"not_before"`
	Expires   time.Time `json:"expires"`
	// CreatedBy is the principal that made the version ("alice",
	// "agent:ID") or "renewal" when the renewal engine did.
	CreatedBy string `json:"created_by"`
	// How is create, renewal, import or merge.
	How string `json:"how"`
	// Current marks the certificate's current version.
	Current bool `json:"current"`
	// Enabled says whether the version may be used.
	Enabled bool `json:"enabled"`
	// Purged, when set, is when version retention purged the version:
	// the vault keeps only this record of it.
	Purged *time.Time `json:"purged,omitempty"`
	// PurgeReason is the retention rule that let the version go.
	PurgeReason string `json:"purge_reason,omitempty"`
}

// Delivery is one install of a certificate version by an agent.
type Delivery struct {
	// Agent is the agent's ID, AgentName its name and Group its agent
	// group.
	Agent     string `json:"agent"`
	AgentName string `json:"agent_name"`
	Group     string `json:"group"`
	// Certificate and Version name what was installed.
	Certificate string `json:"certificate"`
	Version     string `json:"version"`
	// Time is when the agent reported the install.
	Time time.Time `json:"time"`
	// Result is installed, rolled-back or failed.
	Result string `json:"result"`
	// Detail is what the agent said about the result, if anything.
	Detail string `json:"detail,omitempty"`
}

// Access is one principal's access to one object through one assignment.
type Access struct {
	// Object is the object path, e.g. /certificates/www or /secrets/db.
	Object string `json:"object"`
	// Principal is a principal name or group:NAME for an agent group.
	Principal string `json:"principal"`
	// Role is the assigned role and Scope the assignment's scope that
	// covers the object: "/", a collection, the object itself or a name
	// prefix such as /certificates/web-*.
	Role  string `json:"role"`
	Scope string `json:"scope"`
	// ReadsSecret says whether the role lets the principal read the
	// secret value or private key of the object.
	ReadsSecret bool `json:"reads_secret"`
	// Writes says whether the role lets the principal change the object.
	Writes bool `json:"writes"`
}

// SecretRead sums the successful reads of one secret by one principal.
type SecretRead struct {
	// Object is the secret's (or certificate's) object path, Principal
	// who read it.
	Object    string `json:"object"`
	Principal string `json:"principal"`
	// Count is how many times; First and Last are the earliest and latest
	// read in the period covered.
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}
