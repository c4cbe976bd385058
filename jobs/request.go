package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// MaxRequestSize is the largest create request accepted, in bytes.
const MaxRequestSize = 64 << 10

// Limits on the fields of a request, so that one message cannot make the
// worker send the API an unbounded body.
const (
	MaxFieldLength   = 255 // name, plan, region, image
	MaxSSHKeys       = 64
	MaxSSHKeyLength  = 4096
	MaxMetadataPairs = 64
	MaxMetadataValue = 1024
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidRequestID reports whether id can be a request_id: 1 to 64 letters,
// digits, '_' or '-', so it is always a single NATS subject token and KV key.
func ValidRequestID(id string) bool { return requestIDPattern.MatchString(id) }

// Request is a create request as other services publish it.
type Request struct {
	RequestID string            `json:"request_id"`
	Name      string            `json:"name"`
	Plan      string            `json:"plan"`
	Region    string            `json:"region"`
	Image     string            `json:"image"`
	SSHKeys   []string          `json:"ssh_keys,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// FieldError is one problem with one field of a request. Its JSON form is the
// same as a detail of the CloudNexus API's VALIDATION_ERROR.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// RejectError says that a message cannot be tied to any request: it is not a
// JSON object or has no valid request_id. Such a message gets a rejected
// event and is terminated.
type RejectError struct {
	Reason string
}

func (e *RejectError) Error() string { return "reject message: " + e.Reason }

// ValidationError says that a message has a valid request_id but fields that
// cannot be sent to the API. The request fails with INVALID_REQUEST.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// DecodeRequest parses and validates a create request.
//
// On a *RejectError the returned Request is empty. On a *ValidationError it
// holds the request_id and whatever else could be decoded (metadata among it,
// so the failed event can echo it). Unknown fields are ignored.
func DecodeRequest(data []byte) (Request, error) {
	var req Request
	if len(data) > MaxRequestSize {
		// Still find the request_id, so the requester hears why.
		// A map, not a struct: struct fields match keys case-insensitively,
		// and "Request_ID" must not be a request_id here when it is not one
		// below.
		var head map[string]json.RawMessage
		if json.Unmarshal(data, &head) != nil {
			return Request{}, &RejectError{Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed, and not a JSON object", len(data), MaxRequestSize)}
		}
		id, ok := decodeRequestID(head["request_id"])
		if !ok {
			return Request{}, &RejectError{Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed, and has no valid request_id", len(data), MaxRequestSize)}
		}
		req.RequestID = id
		return req, &ValidationError{Fields: []FieldError{{Field: "", Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed", len(data), MaxRequestSize)}}}
	}

	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Request{}, &RejectError{Reason: "message is not a JSON object"}
	}
	// Not dec.More: it is false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, &RejectError{Reason: "message has data after the JSON object"}
	}
	rawID, present := raw["request_id"]
	if !present {
		return Request{}, &RejectError{Reason: "request_id is missing"}
	}
	id, ok := decodeRequestID(rawID)
	if !ok {
		return Request{}, &RejectError{Reason: `request_id must be a string matching ^[A-Za-z0-9_-]{1,64}$`}
	}
	req.RequestID = id

	var fields []FieldError
	bad := func(field, reason string) { fields = append(fields, FieldError{Field: field, Reason: reason}) }

	// metadata first, so a failed event can echo it whatever else is wrong.
	if v, ok := raw["metadata"]; ok && !isNull(v) {
		if md, err := decodeMetadata(v); err != nil {
			bad("metadata", "must be an object of string to string")
		} else if req.Metadata = md; len(md) > MaxMetadataPairs {
			bad("metadata", fmt.Sprintf("must have at most %d keys", MaxMetadataPairs))
		} else {
			for k, val := range req.Metadata {
				if len(k) > MaxFieldLength || len(val) > MaxMetadataValue {
					bad("metadata", fmt.Sprintf("keys must be at most %d bytes and values at most %d", MaxFieldLength, MaxMetadataValue))
					break
				}
			}
		}
	}

	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"name", &req.Name}, {"plan", &req.Plan}, {"region", &req.Region}, {"image", &req.Image},
	} {
		v, ok := raw[f.name]
		switch {
		case !ok || isNull(v):
			bad(f.name, "is required")
		case json.Unmarshal(v, f.dst) != nil:
			bad(f.name, "must be a string")
		case strings.TrimSpace(*f.dst) == "":
			bad(f.name, "must not be empty")
		case len(*f.dst) > MaxFieldLength:
			bad(f.name, fmt.Sprintf("must be at most %d bytes", MaxFieldLength))
		}
	}

	if v, ok := raw["ssh_keys"]; ok && !isNull(v) {
		switch err := json.Unmarshal(v, &req.SSHKeys); {
		case err != nil:
			req.SSHKeys = nil
			bad("ssh_keys", "must be an array of strings")
		case len(req.SSHKeys) > MaxSSHKeys:
			bad("ssh_keys", fmt.Sprintf("must have at most %d keys", MaxSSHKeys))
		default:
			for i, k := range req.SSHKeys {
				if strings.TrimSpace(k) == "" || len(k) > MaxSSHKeyLength {
					bad(fmt.Sprintf("ssh_keys[%d]", i), fmt.Sprintf("must be a non-empty string of at most %d bytes", MaxSSHKeyLength))
				}
			}
		}
	}

	if len(fields) > 0 {
		return req, &ValidationError{Fields: fields}
	}
	return req, nil
}

// decodeMetadata decodes an object of string to string. Unlike a plain
// Unmarshal into map[string]string it refuses null values instead of
// turning them into "".
func decodeMetadata(raw json.RawMessage) (map[string]string, error) {
	var md map[string]*string
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if v == nil {
			return nil, errors.New("metadata value is null")
		}
		out[k] = *v
	}
	return out, nil
}

func decodeRequestID(raw json.RawMessage) (string, bool) {
	var id string
	if json.Unmarshal(raw, &id) != nil || !ValidRequestID(id) {
		return "", false
	}
	return id, true
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// IsReject reports whether err from DecodeRequest means the message cannot
// be tied to a request.
func IsReject(err error) bool {
	var re *RejectError
	return errors.As(err, &re)
}

// Fingerprint is a hex SHA-256 of the decoded request, used to tell a
// duplicate of a request from a conflicting one. Metadata is part of it: a
// different body is a different request. Field order, white space and unknown
// fields are not.
func (r Request) Fingerprint() string {
	// encoding/json sorts map keys, so equal requests marshal equally.
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
