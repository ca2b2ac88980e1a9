package core

import "github.com/certvault/certvault/vault/audit"

// AuditQuery selects audit records.
type AuditQuery struct {
	Filter audit.Filter
	// Limit is how many of the newest matching records to return.
	Limit int
}

// AuditRecords answers GET /v1/audit/records.
type AuditRecords struct {
	Value []audit.Record `json:"value"`
	// Unreachable lists nodes whose trail could not be read.
	Unreachable []string `json:"unreachable,omitempty"`
}
