// Package issuance is certificates: their policies and pending
// operations, issuance through the issuers (the vault's internal CA, ACME
// CAs with External Account Binding, a CSR for an offline CA), revocation
// and CRLs, and renewal: the plan of each version, the renewal brake, and
// the leader's scheduler that renews, mails and emits expiry events.
//
// It is domain code over vault/core: typed requests and results, *Error,
// no net/http.
package issuance
