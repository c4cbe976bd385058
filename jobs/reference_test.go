package jobs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/cloudnexus/provisioner/jobs"
)

// This file keeps the first, straightforward DecodeRequest as a reference:
// the differential tests and FuzzDecodeRequest check that the optimised
// DecodeRequest gives exactly what it gives (request, error type and text).
// It decodes the message into map[string]json.RawMessage with a json.Decoder
// and then each field with its own json.Unmarshal. Do not optimise it; change
// it only together with a deliberate change of DecodeRequest's behaviour.

var referenceRequestIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func referenceValidRequestID(id string) bool { return referenceRequestIDPattern.MatchString(id) }

func decodeRequestReference(data []byte) (jobs.Request, error) {
	var req jobs.Request
	if len(data) > jobs.MaxRequestSize {
		var head map[string]json.RawMessage
		if json.Unmarshal(data, &head) != nil {
			return jobs.Request{}, &jobs.RejectError{Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed, and not a JSON object", len(data), jobs.MaxRequestSize)}
		}
		id, ok := referenceDecodeRequestID(head["request_id"])
		if !ok {
			return jobs.Request{}, &jobs.RejectError{Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed, and has no valid request_id", len(data), jobs.MaxRequestSize)}
		}
		req.RequestID = id
		return req, &jobs.ValidationError{Fields: []jobs.FieldError{{Field: "", Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed", len(data), jobs.MaxRequestSize)}}}
	}

	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return jobs.Request{}, &jobs.RejectError{Reason: "message is not a JSON object"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return jobs.Request{}, &jobs.RejectError{Reason: "message has data after the JSON object"}
	}
	rawID, present := raw["request_id"]
	if !present {
		return jobs.Request{}, &jobs.RejectError{Reason: "request_id is missing"}
	}
	id, ok := referenceDecodeRequestID(rawID)
	if !ok {
		return jobs.Request{}, &jobs.RejectError{Reason: `request_id must be a string matching ^[A-Za-z0-9_-]{1,64}$`}
	}
	req.RequestID = id

	var fields []jobs.FieldError
	bad := func(field, reason string) { fields = append(fields, jobs.FieldError{Field: field, Reason: reason}) }

	if v, ok := raw["metadata"]; ok && !referenceIsNull(v) {
		if md, err := referenceDecodeMetadata(v); err != nil {
			bad("metadata", "must be an object of string to string")
		} else if req.Metadata = md; len(md) > jobs.MaxMetadataPairs {
			bad("metadata", fmt.Sprintf("must have at most %d keys", jobs.MaxMetadataPairs))
		} else {
			for k, val := range req.Metadata {
				if len(k) > jobs.MaxFieldLength || len(val) > jobs.MaxMetadataValue {
					bad("metadata", fmt.Sprintf("keys must be at most %d bytes and values at most %d", jobs.MaxFieldLength, jobs.MaxMetadataValue))
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
		case !ok || referenceIsNull(v):
			bad(f.name, "is required")
		case json.Unmarshal(v, f.dst) != nil:
			bad(f.name, "must be a string")
		case strings.TrimSpace(*f.dst) == "":
			bad(f.name, "must not be empty")
		case len(*f.dst) > jobs.MaxFieldLength:
			bad(f.name, fmt.Sprintf("must be at most %d bytes", jobs.MaxFieldLength))
		}
	}

	if v, ok := raw["ssh_keys"]; ok && !referenceIsNull(v) {
		switch err := json.Unmarshal(v, &req.SSHKeys); {
		case err != nil:
			req.SSHKeys = nil
			bad("ssh_keys", "must be an array of strings")
		case len(req.SSHKeys) > jobs.MaxSSHKeys:
			bad("ssh_keys", fmt.Sprintf("must have at most %d keys", jobs.MaxSSHKeys))
		default:
			for i, k := range req.SSHKeys {
				if strings.TrimSpace(k) == "" || len(k) > jobs.MaxSSHKeyLength {
					bad(fmt.Sprintf("ssh_keys[%d]", i), fmt.Sprintf("must be a non-empty string of at most %d bytes", jobs.MaxSSHKeyLength))
				}
			}
		}
	}

	if len(fields) > 0 {
		return req, &jobs.ValidationError{Fields: fields}
	}
	return req, nil
}

func referenceDecodeMetadata(raw json.RawMessage) (map[string]string, error) {
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

func referenceDecodeRequestID(raw json.RawMessage) (string, bool) {
	var id string
	if json.Unmarshal(raw, &id) != nil || !referenceValidRequestID(id) {
		return "", false
	}
	return id, true
}

func referenceIsNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
