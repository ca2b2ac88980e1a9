// Package fleet is the agents: join tokens and enrollment, agent
// certificates, the objects each agent is bound to and what it reports
// (deliveries), rollouts in waves, the evidence report, and the leader's
// rounds of version retention (which versions the fleet still needs).
//
// It is domain code over vault/core: typed requests and results, *Error,
// no net/http.
package fleet
