// Package v1api is certvault's own /v1 API beside the Key Vault dialect:
// agents (enrollment, the watch and report protocol), rollouts, tokens
// and role assignments, event subscriptions, settings, revocation and
// CRLs, and the evidence report. It only translates: every decision is
// the domain's (vault/core, vault/issuance, vault/fleet), reached through
// front.Env.
package v1api
