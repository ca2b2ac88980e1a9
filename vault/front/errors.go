package front

import (
	"fmt"
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/core"
)

// APIError is an error answered to an API caller. Status and Code are what
// the caller sees with Message, which must be safe to show (no secrets, no
// internal paths); Cause is logged and never sent.
type APIError struct {
	Status  int
	Code    string
	Message string
	Cause   error
	// RetryAfter, when set, is the Retry-After of a 503 or 507 (else
	// writeError's defaults).
	RetryAfter time.Duration
}

// statusOfKind is the HTTP status of each kind of core error.
var statusOfKind = map[core.ErrorKind]int{
	core.KindBadParameter:        http.StatusBadRequest,
	core.KindNotFound:            http.StatusNotFound,
	core.KindConflict:            http.StatusConflict,
	core.KindForbidden:           http.StatusForbidden,
	core.KindUnavailable:         http.StatusServiceUnavailable,
	core.KindInsufficientStorage: http.StatusInsufficientStorage,
	core.KindNotImplemented:      http.StatusNotImplemented,
	core.KindInternal:            http.StatusInternalServerError,
}

// CoreToAPI is the HTTP answer to a core error: the status of its kind,
// its code and message as they are.
func CoreToAPI(e *core.Error) *APIError {
	status, ok := statusOfKind[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	return &APIError{Status: status, Code: e.Code, Message: e.Message, Cause: e.Cause, RetryAfter: e.RetryAfter}
}

func (e *APIError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *APIError) Unwrap() error { return e.Cause }

func BadParameter(format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: "BadParameter", Message: fmt.Sprintf(format, args...)}
}

func InternalError(cause error) *APIError {
	return &APIError{Status: http.StatusInternalServerError, Code: "InternalError", Message: "internal error; see the server log", Cause: cause}
}

// NotCaughtUp is the 503 of a follower that must check something it does
// not know (a credential, an assignment) with the leader and cannot.
func NotCaughtUp(cause error) *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
		Message: "this node could not catch up with the leader within the request deadline to check the credential or role assignment; retry", Cause: cause}
}

func Unavailable(cause error) *APIError { return CoreToAPI(core.Unavailable(cause)) }
