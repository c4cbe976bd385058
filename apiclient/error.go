package apiclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
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

const (
	// maxErrorBody caps how much of an error response is read.
	maxErrorBody = 64 << 10
	// maxMessage caps Error.Message, taken from the body or its envelope.
	maxMessage = 200
	// maxRetryAfter caps Error.RetryAfter, against a server asking for hours.
	maxRetryAfter = 10 * time.Minute
	// redacted replaces the API key should the server echo it back.
	redacted = "[REDACTED]"
)

// newError turns a non-2xx response into an *Error, reading at most
// maxErrorBody bytes of its body and closing it. Any occurrence of apiKey in
// the body is redacted. now is the time Retry-After dates are taken from.
func newError(resp *http.Response, method, path, apiKey string, now time.Time) *Error {
	e := &Error{
		Method:     method,
		Path:       path,
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Drain a little more so the connection can be reused, then give up on it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	if apiKey != "" {
		body = bytes.ReplaceAll(body, []byte(apiKey), []byte(redacted))
	}
	if resp.StatusCode/100 == 3 {
		// Not followed (see refuseRedirect); its body is a page for a browser.
		e.Message = "redirect not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			e.Message += " (Location: " + sanitize(loc, apiKey) + ")"
		}
		return e
	}

	var env struct {
		Error *ErrorDetail `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code = sanitize(env.Error.Code, apiKey)
		e.Message = sanitize(env.Error.Message, apiKey)
		if d := bytes.TrimSpace(env.Error.Details); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
			e.Details = bytes.Clone(d)
		}
		return e
	}
	e.Message = sanitize(string(body), apiKey)
	return e
}

// sanitize makes s fit for a one-line error message: valid UTF-8, control
// characters as spaces, at most maxMessage bytes, trimmed, apiKey redacted.
func sanitize(s, apiKey string) string {
	if apiKey != "" {
		s = strings.ReplaceAll(s, apiKey, redacted)
	}
	s = strings.TrimSpace(s)
	if len(s) > maxMessage {
		s = s[:maxMessage]
	}
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// parseRetryAfter returns the wait a Retry-After header asks for, given as
// delta-seconds (a decimal fraction is accepted) or as an HTTP date. It
// returns 0 for an absent or invalid value, and clamps to [0, maxRetryAfter].
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs <= 0 {
			return 0
		}
		if secs >= maxRetryAfter.Seconds() {
			return maxRetryAfter
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
