// Package solver publishes and removes the TXT records of ACME dns-01
// challenges for the vault's ACME issuers: None for CA accounts whose
// domains are pre-validated, Exec for an operator's program (lego's exec
// provider convention) and RFC2136 for dynamic updates signed with TSIG to
// an authoritative server (BIND, Knot, PowerDNS). WaitPropagation checks
// that resolvers answer the record before the CA is asked to validate it.
//
// It does not talk to the CA, follow CNAMEs of _acme-challenge names (the
// caller passes the name the record is written at), store TSIG keys (the
// caller reads them from the barrier) nor retry: a caller's loop retries
// what IsPermanent says may succeed later. TSIG secrets never appear in an
// error, a log line or a String of this package.
package solver
