package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudnexus/provisioner/jobs"
)

// omit, as a value given to requestJSON, removes the field.
type omit struct{}

// requestJSON returns the contract's example request with the fields in with
// replaced. A json.RawMessage value goes in as it is; omit{} removes the field.
func requestJSON(t testing.TB, with map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"request_id": "req-7f3a9c",
		"name":       "worker-node-02",
		"plan":       "standard-8",
		"region":     "eu-west-1",
		"image":      "ubuntu-22.04",
		"ssh_keys":   []string{"ssh_key_a1b2c3"},
		"metadata":   map[string]string{"team": "payments"},
	}
	for k, v := range with {
		if _, ok := v.(omit); ok {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal request: %v", err)
	}
	return b
}

// exampleRequest is what requestJSON(t, nil) decodes to.
func exampleRequest() jobs.Request {
	return jobs.Request{
		RequestID: "req-7f3a9c",
		Name:      "worker-node-02",
		Plan:      "standard-8",
		Region:    "eu-west-1",
		Image:     "ubuntu-22.04",
		SSHKeys:   []string{"ssh_key_a1b2c3"},
		Metadata:  map[string]string{"team": "payments"},
	}
}

// padTo returns obj, a JSON object, grown to exactly size bytes with white
// space before its closing brace.
func padTo(t testing.TB, obj []byte, size int) []byte {
	t.Helper()
	if len(obj) > size || len(obj) == 0 || obj[len(obj)-1] != '}' {
		t.Fatalf("cannot pad a %d byte object to %d bytes", len(obj), size)
	}
	out := make([]byte, 0, size)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, strings.Repeat(" ", size-len(obj))...)
	return append(out, '}')
}

func repeatStrings(n int, f func(i int) string) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = f(i)
	}
	return s
}

func metadataPairs(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

// decodeInvalid decodes data, which must give a *jobs.ValidationError, and
// returns the request and the field errors.
func decodeInvalid(t *testing.T, data []byte) (jobs.Request, []jobs.FieldError) {
	t.Helper()
	req, err := jobs.DecodeRequest(data)
	var verr *jobs.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("DecodeRequest(%.200q) error = %v (%T), want *jobs.ValidationError", data, err, err)
	}
	if jobs.IsReject(err) {
		t.Errorf("IsReject(%v) = true for a validation error", err)
	}
	if !jobs.ValidRequestID(req.RequestID) {
		t.Errorf("RequestID = %q on a validation error, want a valid one", req.RequestID)
	}
	return req, verr.Fields
}

// decodeRejected decodes data, which must give a *jobs.RejectError and an
// empty request, and returns the reason.
func decodeRejected(t *testing.T, data []byte) string {
	t.Helper()
	req, err := jobs.DecodeRequest(data)
	var rerr *jobs.RejectError
	if !errors.As(err, &rerr) {
		t.Fatalf("DecodeRequest(%.200q) error = %v (%T), want *jobs.RejectError", data, err, err)
	}
	if !jobs.IsReject(err) {
		t.Errorf("IsReject(%v) = false", err)
	}
	var verr *jobs.ValidationError
	if errors.As(err, &verr) {
		t.Errorf("error %v is also a *jobs.ValidationError", err)
	}
	if !reflect.DeepEqual(req, jobs.Request{}) {
		t.Errorf("request = %+v on a reject, want it empty", req)
	}
	return rerr.Reason
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		id   string
		want bool
	}{
		{name: "contract example", id: "req-7f3a9c", want: true},
		{name: "one char", id: "a", want: true},
		{name: "every allowed char", id: "ABCXYZabcxyz0189_-", want: true},
		{name: "64 chars", id: strings.Repeat("a", 64), want: true},
		{name: "uuid", id: "3f1c2a9e-5b7d-4c1e-9f2a-0d6b8e4a7c11", want: true},
		{name: "empty", id: "", want: false},
		{name: "65 chars", id: strings.Repeat("a", 65), want: false},
		{name: "dot splits a subject", id: "req.1", want: false},
		{name: "star wildcard", id: "*", want: false},
		{name: "gt wildcard", id: ">", want: false},
		{name: "space", id: "req 1", want: false},
		{name: "slash", id: "req/1", want: false},
		{name: "trailing newline", id: "req-1\n", want: false},
		{name: "leading newline", id: "\nreq-1", want: false},
		{name: "non-ascii letter", id: "réq-1", want: false},
		{name: "colon", id: "req:1", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := jobs.ValidRequestID(tc.id); got != tc.want {
				t.Errorf("ValidRequestID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

// TestDecodeRequestFixtures checks every sample under testdata/requests
// against the folder it is in (see its README.md).
func TestDecodeRequestFixtures(t *testing.T) {
	t.Parallel()
	const dir = "../testdata/requests"

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil || len(files) < 4 {
			t.Fatalf("valid samples: %v %v, want at least 4", files, err)
		}
		ids := map[string]string{}
		for _, file := range files {
			req, err := jobs.DecodeRequest(readFile(t, file))
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			// -dev publishes them all at start: each must be its own request.
			if other, ok := ids[req.RequestID]; ok {
				t.Errorf("%s and %s share request_id %q", file, other, req.RequestID)
			}
			ids[req.RequestID] = file
		}
	})

	t.Run("contract example", func(t *testing.T) {
		t.Parallel()
		req, err := jobs.DecodeRequest(readFile(t, filepath.Join(dir, "worker-node-02.json")))
		if err != nil {
			t.Fatal(err)
		}
		if want := exampleRequest(); !reflect.DeepEqual(req, want) {
			t.Errorf("got %+v, want %+v", req, want)
		}
	})

	t.Run("api-invalid", func(t *testing.T) {
		t.Parallel()
		// Locally valid: the API is the one that refuses them.
		files, err := filepath.Glob(filepath.Join(dir, "api-invalid", "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("api-invalid samples: %v %v", files, err)
		}
		for _, file := range files {
			if _, err := jobs.DecodeRequest(readFile(t, file)); err != nil {
				t.Errorf("%s: %v", file, err)
			}
		}
	})

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		const idReason = `request_id must be a string matching ^[A-Za-z0-9_-]{1,64}$`
		// Every file in invalid/ must be listed here: a reject reason, or the
		// exact field errors.
		want := map[string]struct {
			reject string
			fields []jobs.FieldError
		}{
			"not-json.txt":            {reject: "message is not a JSON object"},
			"not-object.json":         {reject: "message is not a JSON object"},
			"trailing-data.json":      {reject: "message has data after the JSON object"},
			"missing-request-id.json": {reject: "request_id is missing"},
			"bad-request-id.json":     {reject: idReason},
			"long-request-id.json":    {reject: idReason},
			"numeric-request-id.json": {reject: idReason},
			"empty-name.json":         {fields: []jobs.FieldError{{Field: "name", Reason: "must not be empty"}}},
			"missing-fields.json": {fields: []jobs.FieldError{
				{Field: "plan", Reason: "is required"},
				{Field: "region", Reason: "is required"},
				{Field: "image", Reason: "is required"},
			}},
			"empty-ssh-key.json": {fields: []jobs.FieldError{
				{Field: "ssh_keys[1]", Reason: "must be a non-empty string of at most 4096 bytes"},
			}},
			"wrong-types.json": {fields: []jobs.FieldError{
				{Field: "metadata", Reason: "must be an object of string to string"},
				{Field: "name", Reason: "must be a string"},
				{Field: "plan", Reason: "must be a string"},
				{Field: "region", Reason: "must be a string"},
				{Field: "image", Reason: "must be a string"},
				{Field: "ssh_keys", Reason: "must be an array of strings"},
			}},
		}
		files, err := filepath.Glob(filepath.Join(dir, "invalid", "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("invalid samples: %v %v", files, err)
		}
		for _, file := range files {
			w, ok := want[filepath.Base(file)]
			if !ok {
				t.Errorf("%s: no expectation in this test; add one", file)
				continue
			}
			data := readFile(t, file)
			if w.reject != "" {
				if got := decodeRejected(t, data); got != w.reject {
					t.Errorf("%s: reason %q, want %q", file, got, w.reject)
				}
				continue
			}
			if _, got := decodeInvalid(t, data); !reflect.DeepEqual(got, w.fields) {
				t.Errorf("%s: fields %+v, want %+v", file, got, w.fields)
			}
		}
	})
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRequestValid(t *testing.T) {
	t.Parallel()
	base := requestJSON(t, nil)
	for _, tc := range []struct {
		name   string
		in     []byte
		change func(*jobs.Request)
	}{
		{name: "contract example", in: base},
		{name: "white space around", in: []byte(" \t\r\n" + string(base) + "\n\n ")},
		{name: "one char request_id", in: requestJSON(t, map[string]any{"request_id": "a"}), change: func(r *jobs.Request) { r.RequestID = "a" }},
		{
			name:   "64 char request_id",
			in:     requestJSON(t, map[string]any{"request_id": strings.Repeat("Z", 64)}),
			change: func(r *jobs.Request) { r.RequestID = strings.Repeat("Z", 64) },
		},
		{
			name:   "only required fields",
			in:     requestJSON(t, map[string]any{"ssh_keys": omit{}, "metadata": omit{}}),
			change: func(r *jobs.Request) { r.SSHKeys, r.Metadata = nil, nil },
		},
		{
			name:   "null optional fields are missing",
			in:     requestJSON(t, map[string]any{"ssh_keys": nil, "metadata": nil}),
			change: func(r *jobs.Request) { r.SSHKeys, r.Metadata = nil, nil },
		},
		{
			name:   "empty optional fields",
			in:     requestJSON(t, map[string]any{"ssh_keys": []string{}, "metadata": map[string]string{}}),
			change: func(r *jobs.Request) { r.SSHKeys, r.Metadata = []string{}, map[string]string{} },
		},
		{
			name: "unknown fields ignored",
			in: requestJSON(t, map[string]any{
				"priority":  "high",
				"tags":      []string{"a"},
				"placement": map[string]any{"zone": "eu-west-1b", "spread": true, "n": 3},
				"nothing":   nil,
			}),
		},
		{
			// Field names are matched exactly: "Name" is an unknown field.
			name: "differently cased key is unknown",
			in:   requestJSON(t, map[string]any{"Name": "other", "REGION": 7}),
		},
		{
			name:   "name of 255 bytes",
			in:     requestJSON(t, map[string]any{"name": strings.Repeat("n", jobs.MaxFieldLength)}),
			change: func(r *jobs.Request) { r.Name = strings.Repeat("n", jobs.MaxFieldLength) },
		},
		{
			name:   "non-ascii and escaped name",
			in:     []byte(strings.Replace(string(base), `"worker-node-02"`, `"w\u00ebb-01 \"<x>\""`, 1)),
			change: func(r *jobs.Request) { r.Name = `wëb-01 "<x>"` },
		},
		{
			name: "64 ssh keys",
			in:   requestJSON(t, map[string]any{"ssh_keys": repeatStrings(jobs.MaxSSHKeys, func(i int) string { return fmt.Sprint("key", i) })}),
			change: func(r *jobs.Request) {
				r.SSHKeys = repeatStrings(jobs.MaxSSHKeys, func(i int) string { return fmt.Sprint("key", i) })
			},
		},
		{
			name:   "ssh key of 4096 bytes",
			in:     requestJSON(t, map[string]any{"ssh_keys": []string{strings.Repeat("k", jobs.MaxSSHKeyLength)}}),
			change: func(r *jobs.Request) { r.SSHKeys = []string{strings.Repeat("k", jobs.MaxSSHKeyLength)} },
		},
		{
			name:   "64 metadata pairs",
			in:     requestJSON(t, map[string]any{"metadata": metadataPairs(jobs.MaxMetadataPairs)}),
			change: func(r *jobs.Request) { r.Metadata = metadataPairs(jobs.MaxMetadataPairs) },
		},
		{
			name: "longest metadata key and value",
			in: requestJSON(t, map[string]any{"metadata": map[string]string{
				strings.Repeat("k", jobs.MaxFieldLength): strings.Repeat("v", jobs.MaxMetadataValue),
			}}),
			change: func(r *jobs.Request) {
				r.Metadata = map[string]string{strings.Repeat("k", jobs.MaxFieldLength): strings.Repeat("v", jobs.MaxMetadataValue)}
			},
		},
		{name: "exactly MaxRequestSize bytes", in: padTo(t, base, jobs.MaxRequestSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := exampleRequest()
			if tc.change != nil {
				tc.change(&want)
			}
			got, err := jobs.DecodeRequest(tc.in)
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestDecodeRequestReject(t *testing.T) {
	t.Parallel()
	const (
		notObject = "message is not a JSON object"
		trailing  = "message has data after the JSON object"
		missingID = "request_id is missing"
		badID     = `request_id must be a string matching ^[A-Za-z0-9_-]{1,64}$`
	)
	base := string(requestJSON(t, nil))
	id := func(v any) []byte { return requestJSON(t, map[string]any{"request_id": v}) }
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string
	}{
		{name: "request_id missing", in: id(omit{}), reason: missingID},
		{name: "request_id missing, rest invalid too", in: []byte(`{"name":3}`), reason: missingID},
		{name: "request_id null", in: id(nil), reason: badID},
		{name: "request_id number", in: id(7), reason: badID},
		{name: "request_id bool", in: id(true), reason: badID},
		{name: "request_id object", in: id(map[string]string{"id": "req-1"}), reason: badID},
		{name: "request_id array", in: id([]string{"req-1"}), reason: badID},
		{name: "request_id empty", in: id(""), reason: badID},
		{name: "request_id with dot", in: id("req.1"), reason: badID},
		{name: "request_id wildcard", in: id(">"), reason: badID},
		{name: "request_id with space", in: id("req 1"), reason: badID},
		{name: "request_id with newline", in: id("req-1\n"), reason: badID},
		{name: "request_id 65 chars", in: id(strings.Repeat("a", 65)), reason: badID},
		{name: "request_id non-ascii", in: id("réq-1"), reason: badID},
		{name: "empty message", in: []byte(""), reason: notObject},
		{name: "white space only", in: []byte(" \n\t"), reason: notObject},
		{name: "null", in: []byte("null"), reason: notObject},
		{name: "array", in: []byte(`[` + base + `]`), reason: notObject},
		{name: "string", in: []byte(`"req-7f3a9c"`), reason: notObject},
		{name: "number", in: []byte(`42`), reason: notObject},
		{name: "not json", in: []byte("request_id=req-7f3a9c"), reason: notObject},
		{name: "truncated", in: []byte(base[:len(base)-1]), reason: notObject},
		{name: "trailing comma", in: []byte(base[:len(base)-1] + ",}"), reason: notObject},
		{name: "byte order mark", in: []byte("\ufeff" + base), reason: notObject},
		{name: "trailing brace", in: []byte(base + "}"), reason: trailing},
		{name: "trailing bracket", in: []byte(base + "]"), reason: trailing},
		{name: "trailing garbage", in: []byte(base + " x"), reason: trailing},
		{name: "trailing null", in: []byte(base + "\nnull"), reason: trailing},
		{name: "two objects", in: []byte(base + base), reason: trailing},
		{name: "trailing empty object", in: []byte(base + " {}"), reason: trailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := decodeRejected(t, tc.in); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestDecodeRequestRequiredFields(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", jobs.MaxFieldLength+1)
	variants := []struct {
		name   string
		value  any
		reason string
		kept   string // what the field holds after decoding
	}{
		{name: "missing", value: omit{}, reason: "is required"},
		{name: "null", value: nil, reason: "is required"},
		{name: "empty", value: "", reason: "must not be empty"},
		{name: "white space", value: " \t\n", reason: "must not be empty", kept: " \t\n"},
		{name: "number", value: 8, reason: "must be a string"},
		{name: "bool", value: false, reason: "must be a string"},
		{name: "object", value: map[string]string{"v": "x"}, reason: "must be a string"},
		{name: "array", value: []string{"x"}, reason: "must be a string"},
		{name: "too long", value: long, reason: "must be at most 255 bytes", kept: long},
	}
	for _, field := range []string{"name", "plan", "region", "image"} {
		for _, v := range variants {
			t.Run(field+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				req, fields := decodeInvalid(t, requestJSON(t, map[string]any{field: v.value}))
				if want := []jobs.FieldError{{Field: field, Reason: v.reason}}; !reflect.DeepEqual(fields, want) {
					t.Errorf("fields = %+v, want %+v", fields, want)
				}
				// Everything else is still decoded, for the failed event.
				want := exampleRequest()
				switch field {
				case "name":
					want.Name = v.kept
				case "plan":
					want.Plan = v.kept
				case "region":
					want.Region = v.kept
				case "image":
					want.Image = v.kept
				}
				if !reflect.DeepEqual(req, want) {
					t.Errorf("request = %+v, want %+v", req, want)
				}
			})
		}
	}
}

func TestDecodeRequestMetadata(t *testing.T) {
	t.Parallel()
	const (
		typeReason  = "must be an object of string to string"
		countReason = "must have at most 64 keys"
		sizeReason  = "keys must be at most 255 bytes and values at most 1024"
	)
	payments := map[string]string{"team": "payments"}
	for _, tc := range []struct {
		name   string
		with   map[string]any
		fields []jobs.FieldError
		want   map[string]string // the request's Metadata
	}{
		{
			name:   "array",
			with:   map[string]any{"metadata": []string{"team", "payments"}},
			fields: []jobs.FieldError{{Field: "metadata", Reason: typeReason}},
		},
		{
			name:   "string",
			with:   map[string]any{"metadata": "team=payments"},
			fields: []jobs.FieldError{{Field: "metadata", Reason: typeReason}},
		},
		{
			name:   "number",
			with:   map[string]any{"metadata": 1},
			fields: []jobs.FieldError{{Field: "metadata", Reason: typeReason}},
		},
		{
			// Partly decodable, yet nothing of it is echoed.
			name:   "number value",
			with:   map[string]any{"metadata": json.RawMessage(`{"team":"payments","cost_center":4417}`)},
			fields: []jobs.FieldError{{Field: "metadata", Reason: typeReason}},
		},
		{
			name:   "object value",
			with:   map[string]any{"metadata": map[string]any{"team": map[string]string{"name": "payments"}}},
			fields: []jobs.FieldError{{Field: "metadata", Reason: typeReason}},
		},
		{
			name:   "too many keys",
			with:   map[string]any{"metadata": metadataPairs(jobs.MaxMetadataPairs + 1)},
			fields: []jobs.FieldError{{Field: "metadata", Reason: countReason}},
			want:   metadataPairs(jobs.MaxMetadataPairs + 1),
		},
		{
			name:   "key too long",
			with:   map[string]any{"metadata": map[string]string{"team": "payments", strings.Repeat("k", 256): "v"}},
			fields: []jobs.FieldError{{Field: "metadata", Reason: sizeReason}},
			want:   map[string]string{"team": "payments", strings.Repeat("k", 256): "v"},
		},
		{
			name:   "value too long",
			with:   map[string]any{"metadata": map[string]string{"team": strings.Repeat("v", 1025)}},
			fields: []jobs.FieldError{{Field: "metadata", Reason: sizeReason}},
			want:   map[string]string{"team": strings.Repeat("v", 1025)},
		},
		{
			name: "echoed when other fields are bad",
			with: map[string]any{"name": omit{}, "plan": 8, "ssh_keys": "k"},
			fields: []jobs.FieldError{
				{Field: "name", Reason: "is required"},
				{Field: "plan", Reason: "must be a string"},
				{Field: "ssh_keys", Reason: "must be an array of strings"},
			},
			want: payments,
		},
		{
			name: "echoed when every other field is bad",
			with: map[string]any{"name": nil, "plan": "", "region": 1, "image": omit{}, "ssh_keys": []string{""}},
			fields: []jobs.FieldError{
				{Field: "name", Reason: "is required"},
				{Field: "plan", Reason: "must not be empty"},
				{Field: "region", Reason: "must be a string"},
				{Field: "image", Reason: "is required"},
				{Field: "ssh_keys[0]", Reason: "must be a non-empty string of at most 4096 bytes"},
			},
			want: payments,
		},
		{
			name: "bad together with other fields",
			with: map[string]any{"metadata": true, "image": omit{}},
			fields: []jobs.FieldError{
				{Field: "metadata", Reason: typeReason},
				{Field: "image", Reason: "is required"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, fields := decodeInvalid(t, requestJSON(t, tc.with))
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Errorf("fields = %+v, want %+v", fields, tc.fields)
			}
			if !reflect.DeepEqual(req.Metadata, tc.want) {
				t.Errorf("metadata = %v, want %v", req.Metadata, tc.want)
			}
			if req.RequestID != "req-7f3a9c" {
				t.Errorf("request_id = %q, want req-7f3a9c", req.RequestID)
			}
		})
	}
}

func TestDecodeRequestSSHKeys(t *testing.T) {
	t.Parallel()
	const keyReason = "must be a non-empty string of at most 4096 bytes"
	tooMany := repeatStrings(jobs.MaxSSHKeys+1, func(i int) string { return fmt.Sprint("key", i) })
	for _, tc := range []struct {
		name   string
		keys   any
		fields []jobs.FieldError
		want   []string // the request's SSHKeys
	}{
		{
			name:   "string",
			keys:   "ssh_key_a1b2c3",
			fields: []jobs.FieldError{{Field: "ssh_keys", Reason: "must be an array of strings"}},
		},
		{
			name:   "object",
			keys:   map[string]string{"key": "ssh_key_a1b2c3"},
			fields: []jobs.FieldError{{Field: "ssh_keys", Reason: "must be an array of strings"}},
		},
		{
			name:   "array with a number",
			keys:   []any{"ssh_key_a1b2c3", 2},
			fields: []jobs.FieldError{{Field: "ssh_keys", Reason: "must be an array of strings"}},
		},
		{
			name:   "too many",
			keys:   tooMany,
			fields: []jobs.FieldError{{Field: "ssh_keys", Reason: "must have at most 64 keys"}},
			want:   tooMany,
		},
		{
			name:   "empty key",
			keys:   []string{"ssh_key_a1b2c3", ""},
			fields: []jobs.FieldError{{Field: "ssh_keys[1]", Reason: keyReason}},
			want:   []string{"ssh_key_a1b2c3", ""},
		},
		{
			name:   "white space key",
			keys:   []string{" \t"},
			fields: []jobs.FieldError{{Field: "ssh_keys[0]", Reason: keyReason}},
			want:   []string{" \t"},
		},
		{
			name:   "null key",
			keys:   []any{nil},
			fields: []jobs.FieldError{{Field: "ssh_keys[0]", Reason: keyReason}},
			want:   []string{""},
		},
		{
			name: "each bad key named",
			keys: []string{"", "ssh_key_a1b2c3", strings.Repeat("k", jobs.MaxSSHKeyLength+1)},
			fields: []jobs.FieldError{
				{Field: "ssh_keys[0]", Reason: keyReason},
				{Field: "ssh_keys[2]", Reason: keyReason},
			},
			want: []string{"", "ssh_key_a1b2c3", strings.Repeat("k", jobs.MaxSSHKeyLength+1)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, fields := decodeInvalid(t, requestJSON(t, map[string]any{"ssh_keys": tc.keys}))
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Errorf("fields = %+v, want %+v", fields, tc.fields)
			}
			if !reflect.DeepEqual(req.SSHKeys, tc.want) {
				t.Errorf("ssh_keys = %q, want %q", req.SSHKeys, tc.want)
			}
			if !reflect.DeepEqual(req.Metadata, map[string]string{"team": "payments"}) {
				t.Errorf("metadata = %v, want it echoed", req.Metadata)
			}
		})
	}
}

func TestDecodeRequestOversized(t *testing.T) {
	t.Parallel()
	const size = jobs.MaxRequestSize + 1
	sizeReason := fmt.Sprintf("message is %d bytes, more than the %d allowed", size, jobs.MaxRequestSize)
	t.Run("valid request_id", func(t *testing.T) {
		t.Parallel()
		req, fields := decodeInvalid(t, padTo(t, requestJSON(t, nil), size))
		if want := []jobs.FieldError{{Field: "", Reason: sizeReason}}; !reflect.DeepEqual(fields, want) {
			t.Errorf("fields = %+v, want %+v", fields, want)
		}
		// Only the request_id: nothing else of an oversized message is trusted.
		if want := (jobs.Request{RequestID: "req-7f3a9c"}); !reflect.DeepEqual(req, want) {
			t.Errorf("request = %+v, want %+v", req, want)
		}
	})
	t.Run("large field", func(t *testing.T) {
		t.Parallel()
		big := requestJSON(t, map[string]any{"ssh_keys": []string{strings.Repeat("k", jobs.MaxRequestSize)}})
		req, fields := decodeInvalid(t, big)
		want := []jobs.FieldError{{Field: "", Reason: fmt.Sprintf("message is %d bytes, more than the %d allowed", len(big), jobs.MaxRequestSize)}}
		if !reflect.DeepEqual(fields, want) {
			t.Errorf("fields = %+v, want %+v", fields, want)
		}
		if req.RequestID != "req-7f3a9c" {
			t.Errorf("request_id = %q", req.RequestID)
		}
	})
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string
	}{
		{
			name:   "no request_id",
			in:     padTo(t, requestJSON(t, map[string]any{"request_id": omit{}}), size),
			reason: sizeReason + ", and has no valid request_id",
		},
		{
			name:   "bad request_id",
			in:     padTo(t, requestJSON(t, map[string]any{"request_id": "req.1"}), size),
			reason: sizeReason + ", and has no valid request_id",
		},
		{
			// As in a small message, the key must be spelled exactly.
			name:   "request_id key in other case",
			in:     padTo(t, requestJSON(t, map[string]any{"request_id": omit{}, "Request_ID": "req-7f3a9c"}), size),
			reason: sizeReason + ", and has no valid request_id",
		},
		{
			name:   "not an object",
			in:     []byte("[" + strings.Repeat(" ", size-2) + "]"),
			reason: sizeReason + ", and not a JSON object",
		},
		{
			name:   "trailing data",
			in:     append(padTo(t, requestJSON(t, nil), size-1), '}'),
			reason: sizeReason + ", and not a JSON object",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := decodeRejected(t, tc.in); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	verr := &jobs.ValidationError{Fields: []jobs.FieldError{
		{Field: "name", Reason: "is required"},
		{Field: "ssh_keys[1]", Reason: "must be a non-empty string of at most 4096 bytes"},
	}}
	if got, want := verr.Error(), "invalid request: name: is required; ssh_keys[1]: must be a non-empty string of at most 4096 bytes"; got != want {
		t.Errorf("ValidationError.Error() = %q, want %q", got, want)
	}
	rerr := &jobs.RejectError{Reason: "request_id is missing"}
	if got, want := rerr.Error(), "reject message: request_id is missing"; got != want {
		t.Errorf("RejectError.Error() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "reject", err: rerr, want: true},
		{name: "wrapped reject", err: fmt.Errorf("message 42: %w", rerr), want: true},
		{name: "validation", err: verr, want: false},
		{name: "other", err: errors.New("reject message: no"), want: false},
	} {
		if got := jobs.IsReject(tc.err); got != tc.want {
			t.Errorf("%s: IsReject(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	fingerprint := func(t *testing.T, data []byte) string {
		t.Helper()
		req, err := jobs.DecodeRequest(data)
		if err != nil {
			t.Fatalf("DecodeRequest(%s): %v", data, err)
		}
		return req.Fingerprint()
	}
	base := fingerprint(t, requestJSON(t, nil))
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint() = %q, want 64 lower-case hex digits", base)
	}

	t.Run("same request", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			in   []byte
		}{
			{name: "other key order and white space", in: []byte(`
				{ "metadata" : { "team" : "payments" },
				  "image": "ubuntu-22.04", "region": "eu-west-1",
				  "ssh_keys": [ "ssh_key_a1b2c3" ],
				  "plan": "standard-8", "name": "worker-node-02",
				  "request_id": "req-7f3a9c" }`)},
			{name: "unknown fields", in: requestJSON(t, map[string]any{"priority": "high", "extra": map[string]int{"a": 1}})},
			{name: "escaped strings", in: []byte(`{"request_id":"req-7f3a9c","name":"worker\u002dnode-02","plan":"standard-8","region":"eu-west-1","image":"ubuntu-22.04","ssh_keys":["ssh_key_a1b2c3"],"metadata":{"t\u0065am":"payments"}}`)},
			{name: "padded to the limit", in: padTo(t, requestJSON(t, nil), jobs.MaxRequestSize)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				if got := fingerprint(t, tc.in); got != base {
					t.Errorf("Fingerprint() = %s, want %s", got, base)
				}
			})
		}
	})

	t.Run("metadata key order", func(t *testing.T) {
		t.Parallel()
		a := fingerprint(t, requestJSON(t, map[string]any{"metadata": json.RawMessage(`{"a":"1","b":"2","c":"3"}`)}))
		b := fingerprint(t, requestJSON(t, map[string]any{"metadata": json.RawMessage(`{"c":"3","a":"1","b":"2"}`)}))
		if a != b {
			t.Errorf("fingerprints differ with metadata key order: %s %s", a, b)
		}
	})

	t.Run("absent, null and empty optional fields", func(t *testing.T) {
		t.Parallel()
		absent := fingerprint(t, requestJSON(t, map[string]any{"ssh_keys": omit{}, "metadata": omit{}}))
		for _, with := range []map[string]any{
			{"ssh_keys": nil, "metadata": nil},
			{"ssh_keys": []string{}, "metadata": map[string]string{}},
		} {
			if got := fingerprint(t, requestJSON(t, with)); got != absent {
				t.Errorf("fingerprint with %v = %s, want %s as when absent", with, got, absent)
			}
		}
	})

	t.Run("different request", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			with map[string]any
		}{
			{name: "request_id", with: map[string]any{"request_id": "req-7f3a9d"}},
			{name: "name", with: map[string]any{"name": "worker-node-03"}},
			{name: "name case", with: map[string]any{"name": "Worker-node-02"}},
			{name: "plan", with: map[string]any{"plan": "standard-4"}},
			{name: "region", with: map[string]any{"region": "us-east-1"}},
			{name: "image", with: map[string]any{"image": "debian-12"}},
			{name: "no ssh_keys", with: map[string]any{"ssh_keys": omit{}}},
			{name: "other ssh key", with: map[string]any{"ssh_keys": []string{"ssh_key_ffffff"}}},
			{name: "extra ssh key", with: map[string]any{"ssh_keys": []string{"ssh_key_a1b2c3", "ssh_key_d4e5f6"}}},
			{name: "no metadata", with: map[string]any{"metadata": omit{}}},
			{name: "metadata value", with: map[string]any{"metadata": map[string]string{"team": "billing"}}},
			{name: "metadata key", with: map[string]any{"metadata": map[string]string{"Team": "payments"}}},
			{name: "extra metadata", with: map[string]any{"metadata": map[string]string{"team": "payments", "env": "prod"}}},
			{name: "white space in a value", with: map[string]any{"image": "ubuntu-22.04 "}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				if got := fingerprint(t, requestJSON(t, tc.with)); got == base {
					t.Errorf("Fingerprint() with %v = base fingerprint %s", tc.with, got)
				}
			})
		}
	})

	t.Run("ssh key order", func(t *testing.T) {
		t.Parallel()
		// The API gets the keys in order, so the order is part of the body.
		a := fingerprint(t, requestJSON(t, map[string]any{"ssh_keys": []string{"k1", "k2"}}))
		b := fingerprint(t, requestJSON(t, map[string]any{"ssh_keys": []string{"k2", "k1"}}))
		if a == b {
			t.Errorf("fingerprints equal with ssh_keys reordered: %s", a)
		}
	})
}

func TestMetadataNullValueIsInvalid(t *testing.T) {
	t.Parallel()
	req, err := jobs.DecodeRequest([]byte(`{"request_id":"r1","name":"n","plan":"p","region":"r","image":"i","metadata":{"team":null}}`))
	var verr *jobs.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	want := []jobs.FieldError{{Field: "metadata", Reason: "must be an object of string to string"}}
	if !reflect.DeepEqual(verr.Fields, want) || req.Metadata != nil {
		t.Errorf("fields %v, metadata %v; want %v and no metadata", verr.Fields, req.Metadata, want)
	}
}
