package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudnexus/provisioner/internal/plainjson"
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

// ValidRequestID reports whether id can be a request_id: 1 to 64 letters,
// digits, '_' or '-', so it is always a single NATS subject token and KV key.
// That is, it matches ^[A-Za-z0-9_-]{1,64}$ (checked byte by byte, several
// times faster than a regexp; the tests compare the two).
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

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
//
// It runs for every message the worker takes, so the common case, a
// well-formed request of plain strings, is kept cheap: the message and its
// members are read without encoding/json when they are plain (package
// plainjson; decodeObject, decodeString and what follows it). Everything else
// still goes through encoding/json, so what a message decodes to, and which
// error it gets, is encoding/json's answer. reference_test.go
// keeps the straightforward version this must agree with; the tests and
// FuzzDecodeRequest compare the two.
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

	raw, rerr := decodeObject(data)
	if rerr != nil {
		return Request{}, rerr
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
	if v, ok := raw["metadata"]; ok && !plainjson.IsNull(v) {
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

	// The required strings, in this order (the order of their errors).
	req.Name = requiredString(raw, "name", bad)
	req.Plan = requiredString(raw, "plan", bad)
	req.Region = requiredString(raw, "region", bad)
	req.Image = requiredString(raw, "image", bad)

	if v, ok := raw["ssh_keys"]; ok && !plainjson.IsNull(v) {
		keys, err := decodeStrings(v) // nil on an error
		req.SSHKeys = keys
		switch {
		case err != nil:
			bad("ssh_keys", "must be an array of strings")
		case len(keys) > MaxSSHKeys:
			bad("ssh_keys", fmt.Sprintf("must have at most %d keys", MaxSSHKeys))
		default:
			for i, k := range keys {
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

// requiredString decodes the member name of a request, a non-empty string of
// at most MaxFieldLength bytes, and reports a problem with it to bad. A value
// that is not a string leaves "".
func requiredString(raw map[string]json.RawMessage, name string, bad func(field, reason string)) string {
	v, ok := raw[name]
	if !ok || plainjson.IsNull(v) {
		bad(name, "is required")
		return ""
	}
	s, err := decodeString(v)
	switch {
	case err != nil:
		bad(name, "must be a string")
	case strings.TrimSpace(s) == "":
		bad(name, "must not be empty")
	case len(s) > MaxFieldLength:
		bad(name, fmt.Sprintf("must be at most %d bytes", MaxFieldLength))
	}
	return s
}

// decodeObject decodes data, which must be one JSON object with nothing but
// white space around it, into its members keyed exactly as spelt: not a
// struct, whose fields would match keys case-insensitively. Of duplicate keys
// the last one wins, as encoding/json does into a map.
//
// An object of plain members (package plainjson), nearly every message, is
// read directly; its values then alias data. Otherwise a single
// json.Unmarshal decodes a well-formed message; it checks the whole input
// first, so there is no data after the object. When it fails, the
// message is decoded again, the slow way, only to tell the two reject reasons
// apart: json.Unmarshal reports data after the object as a syntax error like
// any other.
func decodeObject(data []byte) (map[string]json.RawMessage, *RejectError) {
	// Nearly every message is an object of plain members: read at once.
	raw := make(map[string]json.RawMessage, 8)
	if plainjson.Object(data, func(key, value []byte) bool {
		raw[string(key)] = value
		return true
	}) {
		return raw, nil
	}
	// A JSON null leaves raw nil without an error: not an object either.
	raw = nil
	if json.Unmarshal(data, &raw) == nil && raw != nil {
		return raw, nil
	}

	// Rejects only: decode the first value, then expect nothing after it.
	var first map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&first); err != nil || first == nil {
		return nil, &RejectError{Reason: "message is not a JSON object"}
	}
	// Not dec.More: it is false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return nil, &RejectError{Reason: "message has data after the JSON object"}
	}
	// Not reached for what json.Unmarshal refused; kept so that this
	// function's answer is, by construction, the decoder's.
	return first, nil
}

// The values of a request are decoded by encoding/json, except for the shapes
// nearly every request has: a string, an array of strings and an object of
// string to string, with only plain strings in them (see package plainjson).
// Those are read directly, which spares a json.Unmarshal (another pass over
// the value, a decoder, reflection) each. These fast paths only recognise: on
// anything they are not sure of they give up, and json.Unmarshal decides, so
// results and errors stay encoding/json's own.

// decodeString decodes one JSON value that should be a string.
func decodeString(v json.RawMessage) (string, error) {
	if s, end, ok := plainjson.String(v, 0); ok && end == len(v) {
		return s, nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// decodeStrings decodes one JSON value that should be an array of strings.
// On an error it returns nil. A null element is "", as with json.Unmarshal.
func decodeStrings(v json.RawMessage) ([]string, error) {
	if out, end, ok := plainjson.StringArray(v, 0); ok && end == len(v) {
		return out, nil
	}
	var out []string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeMetadata decodes an object of string to string. Unlike a plain
// Unmarshal into map[string]string it refuses null values instead of
// turning them into "".
func decodeMetadata(raw json.RawMessage) (map[string]string, error) {
	if md, end, ok := plainjson.StringObject(raw, 0); ok && end == len(raw) {
		return md, nil
	}
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
	id, err := decodeString(raw)
	if err != nil || !ValidRequestID(id) {
		return "", false
	}
	return id, true
}

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
	// The hash of the request's JSON as encoding/json writes it (map keys
	// sorted, so equal requests encode equally), encoded without reflection.
	var buf [512]byte
	sum := sha256.Sum256(appendRequestJSON(buf[:0], &r))
	return hex.EncodeToString(sum[:])
}
