package client

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrConfig reports an invalid Config passed to New.
	ErrConfig = errors.New("client: invalid config")
	// ErrPending reports that a transaction has executed but is not yet
	// committed, so it has no receipt yet; retry later.
	ErrPending = errors.New("client: transaction not committed yet")
	// ErrInvalid reports that a transaction was lost (e.g. in an election)
	// and will never commit.
	ErrInvalid = errors.New("client: transaction is invalid")
	// ErrNotFound matches any *APIError with HTTP status 404, e.g. a log
	// entry that does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrBadResponse reports a 2xx answer that does not follow the API
	// contract (malformed JSON, missing transaction id, unknown status).
	ErrBadResponse = errors.New("client: malformed response")
	// ErrBadScope reports a Scope other than Private or Public.
	ErrBadScope = errors.New("client: bad log scope")
)

// APIError is a non-2xx answer from a node. Code is the node's stable error
// code (empty if the body was not the documented error JSON, in which case
// Message holds the start of the body).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, code, e.Message)
}

// Is lets errors.Is(err, ErrNotFound) match a 404 answer whatever its code.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}
