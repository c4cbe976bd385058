package apiclient

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrUnauthorized matches (with errors.Is) an *Error whose status is 401: the
// client's API key is wrong, not the request.
var ErrUnauthorized = errors.New("cloudnexus: unauthorized")

// Error is a response the API answered with a status other than 2xx.
type Error struct {
	Method     string
	Path       string // the request path, without query
	StatusCode int
	// Code, Message and Details come from the API's error body; when the body
	// is not the documented envelope, Code is empty and Message holds the
	// start of the body.
	Code    string
	Message string
	Details []byte // raw JSON, nil when absent
	// RetryAfter is the server's Retry-After, zero when absent or invalid.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.StatusCode)
	}
	if e.Message != "" {
		return fmt.Sprintf("cloudnexus %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, code, e.Message)
	}
	return fmt.Sprintf("cloudnexus %s %s: %d %s", e.Method, e.Path, e.StatusCode, code)
}

// Is makes errors.Is(err, ErrUnauthorized) true for a 401.
func (e *Error) Is(target error) bool {
	return target == ErrUnauthorized && e.StatusCode == http.StatusUnauthorized
}

// Temporary reports whether the same call may succeed later: 5xx and 429.
func (e *Error) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests
}
