package schema_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/schema"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const requestsDir = "../../testdata/requests"

// TestRequestFixtures checks every sample request against the schema: the
// schema accepts a fixture exactly when jobs.DecodeRequest does, and the
// directory it sits in says which it should be.
func TestRequestFixtures(t *testing.T) {
	var files []string
	for _, pattern := range []string{"*", "invalid/*", "api-invalid/*"} {
		m, err := filepath.Glob(filepath.Join(requestsDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && !st.IsDir() && filepath.Base(f) != "README.md" {
				files = append(files, f)
			}
		}
	}
	if len(files) < 15 {
		t.Fatalf("found %d fixtures in %s, expected the whole set", len(files), requestsDir)
	}
	for _, f := range files {
		name, _ := filepath.Rel(requestsDir, f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, decErr := jobs.DecodeRequest(data)
			schErr := schema.ValidateRequest(data)
			wantValid := !strings.HasPrefix(name, "invalid"+string(filepath.Separator))
			if (decErr == nil) != wantValid {
				t.Errorf("DecodeRequest: %v, want valid %t", decErr, wantValid)
			}
			if (schErr == nil) != wantValid {
				t.Errorf("ValidateRequest: %v, want valid %t", schErr, wantValid)
			}
		})
	}
}

// request builds a request body from a valid one with fields replaced
// (a nil value removes the field; use json.RawMessage("null") for null).
func request(change map[string]any) []byte {
	req := map[string]any{
		"request_id": "req-7f3a9c",
		"name":       "worker-node-02",
		"plan":       "standard-8",
		"region":     "eu-west-1",
		"image":      "ubuntu-22.04",
		"ssh_keys":   []string{"ssh_key_a1b2c3"},
		"metadata":   map[string]string{"team": "payments"},
	}
	for k, v := range change {
		if v == nil {
			delete(req, k)
			continue
		}
		req[k] = v
	}
	b, _ := json.Marshal(req) // strings, slices and maps: it cannot fail
	return b
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ssh_key_%d", i)
	}
	return out
}

func pairs(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}

var null = json.RawMessage("null")

// TestRequestRules walks each rule of the contract on both sides of its
// limit: the schema and the decoder must agree on every case.
func TestRequestRules(t *testing.T) {
	tests := []struct {
		name  string
		body  []byte
		valid bool
	}{
		{"valid", request(nil), true},
		{"unknown fields are ignored", request(map[string]any{"priority": "high", "placement": map[string]any{"zone": "b"}}), true},
		{"optional fields absent", request(map[string]any{"ssh_keys": nil, "metadata": nil}), true},
		{"optional fields null", request(map[string]any{"ssh_keys": null, "metadata": null}), true},
		{"empty ssh_keys and metadata", request(map[string]any{"ssh_keys": []string{}, "metadata": map[string]string{}}), true},
		{"request_id of 64", request(map[string]any{"request_id": strings.Repeat("a", 64)}), true},
		{"request_id of 65", request(map[string]any{"request_id": strings.Repeat("a", 65)}), false},
		{"request_id empty", request(map[string]any{"request_id": ""}), false},
		{"request_id with a dot", request(map[string]any{"request_id": "req.1"}), false},
		{"request_id null", request(map[string]any{"request_id": null}), false},
		{"request_id missing", request(map[string]any{"request_id": nil}), false},
		{"Request_ID is not request_id", request(map[string]any{"request_id": nil, "Request_ID": "req-1"}), false},
		{"name of 255", request(map[string]any{"name": strings.Repeat("n", 255)}), true},
		{"name of 256", request(map[string]any{"name": strings.Repeat("n", 256)}), false},
		{"name empty", request(map[string]any{"name": ""}), false},
		{"name blank", request(map[string]any{"name": " \t\u00a0\u3000"}), false},
		{"name with spaces around", request(map[string]any{"name": "  web 01 "}), true},
		{"name null", request(map[string]any{"name": null}), false},
		{"name missing", request(map[string]any{"name": nil}), false},
		{"plan a number", request(map[string]any{"plan": 8}), false},
		{"region an object", request(map[string]any{"region": map[string]string{"code": "x"}}), false},
		{"image missing", request(map[string]any{"image": nil}), false},
		{"64 ssh keys", request(map[string]any{"ssh_keys": keys(64)}), true},
		{"65 ssh keys", request(map[string]any{"ssh_keys": keys(65)}), false},
		{"ssh key of 4096", request(map[string]any{"ssh_keys": []string{strings.Repeat("k", 4096)}}), true},
		{"ssh key of 4097", request(map[string]any{"ssh_keys": []string{strings.Repeat("k", 4097)}}), false},
		{"ssh key blank", request(map[string]any{"ssh_keys": []string{"a", "\n"}}), false},
		{"ssh key null", request(map[string]any{"ssh_keys": []any{"a", nil}}), false},
		{"metadata value null", request(map[string]any{"metadata": map[string]any{"team": nil}}), false},
		{"ssh_keys a string", request(map[string]any{"ssh_keys": "ssh_key_a1b2c3"}), false},
		{"64 metadata pairs", request(map[string]any{"metadata": pairs(64)}), true},
		{"65 metadata pairs", request(map[string]any{"metadata": pairs(65)}), false},
		{"metadata key of 255", request(map[string]any{"metadata": map[string]string{strings.Repeat("k", 255): "v"}}), true},
		{"metadata key of 256", request(map[string]any{"metadata": map[string]string{strings.Repeat("k", 256): "v"}}), false},
		{"metadata value of 1024", request(map[string]any{"metadata": map[string]string{"k": strings.Repeat("v", 1024)}}), true},
		{"metadata value of 1025", request(map[string]any{"metadata": map[string]string{"k": strings.Repeat("v", 1025)}}), false},
		{"metadata value a number", request(map[string]any{"metadata": map[string]any{"k": 1}}), false},
		{"metadata an array", request(map[string]any{"metadata": []string{"team"}}), false},
		{"null", []byte("null"), false},
		{"empty object", []byte("{}"), false},
		{"array", []byte(`["req-1"]`), false},
		{"a stray bracket after the object", append(request(nil), ']'), false},
		{"a second object", append(request(nil), request(nil)...), false},
		{"white space after the object", append(request(nil), " \n"...), true},
		{"not JSON", []byte("name=web-01"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, decErr := jobs.DecodeRequest(tt.body)
			schErr := schema.ValidateRequest(tt.body)
			if (decErr == nil) != tt.valid {
				t.Errorf("DecodeRequest: %v, want valid %t", decErr, tt.valid)
			}
			if (schErr == nil) != tt.valid {
				t.Errorf("ValidateRequest: %v, want valid %t", schErr, tt.valid)
			}
		})
	}
}

// TestRequestSchemaLimits lists every known case where the schema and the
// decoder disagree, each for a reason JSON Schema cannot express, and checks
// that they do disagree (so that the list stays true).
func TestRequestSchemaLimits(t *testing.T) {
	tests := []struct {
		name string
		why  string
		body []byte
		// Whether each side accepts the body.
		decoder, schema bool
	}{
		{
			name:    "larger than 64 KiB",
			why:     "the size of the message is not a property of the JSON value",
			body:    request(map[string]any{"padding": strings.Repeat("x", jobs.MaxRequestSize)}),
			decoder: false, schema: true,
		},
		{
			name:    "name of 200 two-byte characters",
			why:     "maxLength counts characters, the decoder counts UTF-8 bytes (400 > 255)",
			body:    request(map[string]any{"name": strings.Repeat("é", 200)}),
			decoder: false, schema: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, decErr := jobs.DecodeRequest(tt.body)
			schErr := schema.ValidateRequest(tt.body)
			if (decErr == nil) != tt.decoder || (schErr == nil) != tt.schema {
				t.Errorf("DecodeRequest: %v (want valid %t); ValidateRequest: %v (want valid %t); listed because %s",
					decErr, tt.decoder, schErr, tt.schema, tt.why)
			}
		})
	}
}

// TestBlankAgreesWithDecoder checks the schema's "not blank" pattern against
// the decoder's strings.TrimSpace, one character at a time: all of Latin-1,
// every character Unicode calls white space and its neighbours, and the
// byte order mark, which ECMAScript's \s counts as space and Go does not.
func TestBlankAgreesWithDecoder(t *testing.T) {
	runes := []rune{0xFEFF, 0x180E, 0x200B, 0x10FFFF}
	for r := rune(0); r <= 0xFF; r++ {
		runes = append(runes, r)
	}
	for _, rg := range unicode.White_Space.R16 {
		for r := rune(rg.Lo) - 1; r <= rune(rg.Hi)+1; r++ {
			runes = append(runes, r)
		}
	}
	disagree := 0
	for _, r := range runes {
		if !utf8.ValidRune(r) {
			continue
		}
		body := request(map[string]any{"name": string(r)})
		_, decErr := jobs.DecodeRequest(body)
		schErr := schema.ValidateRequest(body)
		if (decErr == nil) != (schErr == nil) {
			disagree++
			if disagree <= 10 {
				t.Errorf("name %U: DecodeRequest %v, ValidateRequest %v", r, decErr, schErr)
			}
		}
	}
	if disagree > 0 {
		t.Errorf("%d characters disagree", disagree)
	}
}
