package acme

import (
	"context"
	"errors"
	"fmt"
	"strings"

	legoacme "github.com/go-acme/lego/v5/acme"
)

// Kind classifies an Error by what the vault should do about it.
type Kind int

const (
	// KindUnreachable: the CA could not be reached; retry later.
	KindUnreachable Kind = iota
	// KindCA: the CA refused or failed the request with a problem
	// document; a human must act (or the order is cancelled).
	KindCA
	// KindConfig: the issuer's configuration is wrong; a human must fix it.
	KindConfig
	// KindSolver: the DNS solver failed; a human must fix it.
	KindSolver
	// KindRetry: the CA asks to come back later (rate limit, server
	// error); retry.
	KindRetry
)

// Error is a failed ACME step. Msg says what happened and what to do;
// Problem is the CA's problem document when there is one.
type Error struct {
	Kind    Kind
	Msg     string
	Problem *legoacme.ProblemDetails
	Err     error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying the same step cannot help.
func (e *Error) Permanent() bool {
	return e.Kind == KindCA || e.Kind == KindConfig || e.Kind == KindSolver
}

// Code is a short error code for the pending operation's error: the CA's
// problem type without its URN prefix, or the kind.
func (e *Error) Code() string {
	if e.Problem != nil && e.Problem.Type != "" {
		t := e.Problem.Type
		t = strings.TrimPrefix(t, "urn:ietf:params:acme:error:")
		return t
	}
	switch e.Kind {
	case KindUnreachable:
		return "CAUnreachable"
	case KindConfig:
		return "IssuerConfiguration"
	case KindSolver:
		return "DNSSolverFailed"
	case KindRetry:
		return "CARetryLater"
	}
	return "CAError"
}

// IsPermanent reports whether err is an Error that retrying cannot fix.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent()
}

// problemAdvice says what to do about the problem types a user meets.
var problemAdvice = map[string]string{
	"unauthorized":            "the CA refused: check the account's External Account Binding (account id and HMAC key) and that the account may order these names",
	"externalAccountRequired": "the CA requires External Account Binding: set --account-id and --api-key-file on the issuer",
	"malformed":               "the CA found the request malformed",
	"rejectedIdentifier":      "the CA will not issue for one of the names: check the policy's names",
	"dns":                     "the CA could not look up the challenge record: check the DNS solver and the zone's delegation",
	"incorrectResponse":       "the CA found a different TXT value: check that the solver publishes in the right zone",
	"caa":                     "a CAA record forbids this CA for the name",
	"badCSR":                  "the CA refused the CSR: check the policy's key type and names",
	"accountDoesNotExist":     "the account is unknown to the CA: run 'certvault issuer check' to register it again",
	"orderNotReady":           "the order was not ready to be finalized",
	"badPublicKey":            "the CA refused the key type: choose another kty, key_size or curve in the policy",
}

// wrap turns a lego error into an Error that names the step.
func wrap(err error, step string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var rl *legoacme.RateLimitedError
	if errors.As(err, &rl) {
		return &Error{Kind: KindRetry, Msg: fmt.Sprintf("%s: the CA rate-limits this account: %s", step, rl.Detail), Problem: rl.ProblemDetails, Err: err}
	}
	var p *legoacme.ProblemDetails
	if errors.As(err, &p) {
		return problemError(p, step, err)
	}
	return &Error{Kind: KindUnreachable, Msg: fmt.Sprintf("%s: %v", step, err), Err: err}
}

// problemError describes a problem document.
func problemError(p *legoacme.ProblemDetails, step string, err error) *Error {
	t := strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	kind := KindCA
	if t == "serverInternal" || t == "rateLimited" || t == "badNonce" || p.HTTPStatus >= 500 {
		kind = KindRetry
	}
	msg := fmt.Sprintf("%s: the CA answered %s", step, t)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	for _, sp := range p.SubProblems {
		msg += fmt.Sprintf("; %s: %s", strings.TrimPrefix(sp.Type, "urn:ietf:params:acme:error:"), sp.Detail)
	}
	if a, ok := problemAdvice[t]; ok {
		if t == "unauthorized" && !strings.HasPrefix(step, "register") {
			// Outside registration the CA refuses a validation or an
			// identifier, not the account binding.
			a = "the CA refused: check that the challenge record is published where the CA looks, and that the account may order these names"
		}
		msg += " (" + a + ")"
	}
	if err == nil {
		err = p
	}
	return &Error{Kind: kind, Msg: msg, Problem: p, Err: err}
}
