package v1api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"

	"github.com/certvault/certvault/vault/access"
)

// The /v1 front of agents (fleet/agents.go decides): join tokens,
// enrollment and renewal, listing and revocation; and how a request
// presenting an agent's client certificate is identified.

func (f *Front) agentRoutes(vault func(string, string, http.HandlerFunc, ...access.Action), public func(string, string, http.HandlerFunc), add func(front.Endpoint, http.Handler)) {
	vault("POST", "/v1/agents/join-tokens", f.handleAgentJoinToken, access.AgentsManage)
	vault("GET", "/v1/agents", f.handleListAgents, access.AgentsManage, access.AuditRead)
	vault("GET", "/v1/agents/{id}", f.handleGetAgent, access.AgentsManage, access.AuditRead)
	vault("DELETE", "/v1/agents/{id}", f.handleRevokeAgent, access.AgentsManage)
	public("POST", "/v1/agents/enroll", f.LeaderOnly(f.handleEnroll))
	add(front.Endpoint{Method: "POST", Pattern: "/v1/agents/renew", Agent: true}, f.AgentOnly(f.handleAgentRenew))
	add(front.Endpoint{Method: "POST", Pattern: "/v1/agents/token", Agent: true}, f.AgentOnly(f.handleAgentToken))
	f.agentProtocolRoutes(add)
}

func (f *Front) handleAgentJoinToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Group   string `json:"group"`
		TTL     string `json:"ttl"`
		Uses    int    `json:"uses"`
		CertTTL string `json:"cert_ttl"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.CreateAgentJoinToken(r.Context(), front.CallerOf(r), fleet.CreateAgentJoinTokenRequest{Group: req.Group, TTL: req.TTL, Uses: req.Uses, CertTTL: req.CertTTL})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusCreated, res.Token)
}

func (f *Front) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		CSR   string `json:"csr"`
		Name  string `json:"name"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	csr, err := ParseAgentCSR(req.CSR)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	name, err := fleet.AgentEnrollName(req.Name, csr)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	// Who tried, for the audit record, however the token fares.
	c := core.Caller{Principal: access.Principal{Name: "enroll:" + name}}
	front.InfoOf(r).Caller = c
	tokID, secret, ok := fleet.ParseAgentJoinToken(req.Token)
	if !ok {
		f.Fail(w, r, fleet.BadAgentToken())
		return
	}
	res, err := f.EnrollAgent(r.Context(), c, fleet.EnrollAgentRequest{TokenID: tokID, TokenSecret: secret, CSR: csr, Name: name, Source: front.InfoSource(r)})
	if err != nil {
		if core.IsKind(err, core.KindForbidden) {
			front.InfoOf(r).Denied = true
			f.Log.Warn("agent enrollment refused", "remote", r.RemoteAddr, "name", name)
		}
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/agents/" + res.Enrollment.AgentID
	front.WriteJSON(w, http.StatusCreated, res.Enrollment)
}

// maxAgentRSABits bounds an agent's RSA key: checking a signature costs
// about the cube of the key size, and an enrollment CSR is read before the
// join token is checked.
const maxAgentRSABits = 8192

// ParseAgentCSR checks an agent's CSR: PEM, an EC P-256/P-384 or RSA
// 2048-8192 key (checked first: a CSR of a megabyte RSA key would cost
// minutes of CPU to verify) and a good signature.
func ParseAgentCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, front.BadParameter("csr: give a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, front.BadParameter("csr does not parse: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, front.BadParameter("csr key: use EC P-256 or P-384, or RSA of 2048 to %d bits", maxAgentRSABits)
		}
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b < 2048 || b > maxAgentRSABits {
			return nil, front.BadParameter("csr key: RSA keys need 2048 to %d bits, not %d", maxAgentRSABits, b)
		}
	default:
		return nil, front.BadParameter("csr key: use EC P-256 or P-384, or RSA of 2048 to %d bits", maxAgentRSABits)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, front.BadParameter("csr signature does not verify: %v", err)
	}
	return csr, nil
}

func (f *Front) handleAgentRenew(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CSR string `json:"csr"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	csr, err := ParseAgentCSR(req.CSR)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.RenewAgent(r.Context(), front.CallerOf(r), fleet.RenewAgentRequest{CSR: csr})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, res.Enrollment)
}

func (f *Front) handleListAgents(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	q := r.URL.Query()
	out, err := f.ListAgents(r.Context(), front.CallerOf(r), fleet.ListAgentsRequest{Group: q.Get("group"), Certificate: q.Get("certificate")})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (f *Front) handleGetAgent(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	st, err := f.GetAgent(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, st)
}

func (f *Front) handleRevokeAgent(w http.ResponseWriter, r *http.Request) {
	res, err := f.RevokeAgent(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	if res.Index != 0 {
		front.SetIndexHeader(w, res.Index)
	}
	front.WriteJSON(w, http.StatusOK, res.Agent)
}
