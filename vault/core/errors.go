package core

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the core.
var (
	// ErrNotInitialized means the replicated state has no keyring yet.
	ErrNotInitialized = errors.New("vault: not initialized")
	// ErrRenewalHalted means an automatic renewal was refused by the
	// renewal brake (see vault/renewal): the certificate was renewed
	// automatically too often, and waits for a person.
	ErrRenewalHalted = errors.New("vault: automatic renewal halted by the renewal brake")
)

// The domain core's errors (issue 17). Core code — everything that decides
// what may happen to an object, as opposed to how a request arrived — returns
// *Error and never an HTTP status: each front maps the Kind to its wire (the
// Key Vault and /v1 fronts: an HTTP status and the Key Vault error shape,
// through coreToAPI). The Code is the domain's own name for the error
// ("CertificateNotFound", "RenewalHalted", "LastAdministrator"): it is part of
// the API's vocabulary, the same on every front.
//
// Files named core_*.go hold core code and must not import net/http
// (TestCoreFilesHaveNoHTTP); they move to the vault/core package once every
// domain is split.

// ErrorKind is the class of a core error: what the caller can do about it.
type ErrorKind int

// The kinds of core errors.
const (
	// KindBadParameter: the request is wrong; Field names what to fix.
	KindBadParameter ErrorKind = iota + 1
	// KindNotFound: the object (or version) does not exist.
	KindNotFound
	// KindConflict: the object's state forbids the operation now (deleted,
	// being deleted, changed concurrently, in use).
	KindConflict
	// KindForbidden: the principal may not do it, or nobody may (a managed
	// object, the last administrator).
	KindForbidden
	// KindUnavailable: the cluster cannot do it now (no leader, not caught
	// up, the audit trail cannot be written); retry after RetryAfter.
	KindUnavailable
	// KindInsufficientStorage: a disk is full; nothing was done.
	KindInsufficientStorage
	// KindNotImplemented: a valid request for something certvault does not do.
	KindNotImplemented
	// KindInternal: a bug or a broken invariant; the Cause is logged, never
	// shown.
	KindInternal
)

// Error is a core error. Message is safe to show (no secrets, no internal
// paths) and says what to fix; Cause is logged and never sent.
type Error struct {
	Kind ErrorKind
	// Code is the stable machine-readable name (Key Vault's where it has
	// one).
	Code    string
	Message string
	// Field is the request member a KindBadParameter error is about, in
	// the wire's spelling ("policy.x509_props.subject"), when there is one.
	Field string
	// RetryAfter, for KindUnavailable and KindInsufficientStorage, is when
	// to try again (0: the front's default).
	RetryAfter time.Duration
	Cause      error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// errBadParameter is a KindBadParameter error about field ("" when the
// request as a whole is wrong).
func BadParameter(field, format string, args ...any) *Error {
	return &Error{Kind: KindBadParameter, Code: "BadParameter", Field: field, Message: fmt.Sprintf(format, args...)}
}

// errNotFound is a KindNotFound error with the given code.
func NotFound(code, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errConflict is a KindConflict error with the given code.
func Conflict(code, format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errForbidden is a KindForbidden error.
func Forbidden(format string, args ...any) *Error {
	return &Error{Kind: KindForbidden, Code: "Forbidden", Message: fmt.Sprintf(format, args...)}
}

// errInternal is a KindInternal error around cause.
func Internal(cause error) *Error {
	return &Error{Kind: KindInternal, Code: "InternalError", Message: "internal error; see the server log", Cause: cause}
}

// errUnavailable is a KindUnavailable error: no leader, or not ready.
func Unavailable(cause error) *Error {
	return &Error{Kind: KindUnavailable, Code: "ServiceUnavailable", Message: "the cluster has no leader or is not ready; retry", Cause: cause}
}

// IsKind reports whether err is (or wraps) a core error of kind k.
func IsKind(err error, k ErrorKind) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Kind == k
}
