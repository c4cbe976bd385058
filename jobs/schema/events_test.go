package schema_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/schema"
)

const goldenDir = "../../testdata/golden"

// TestGoldenEvents validates every golden event against its kind's schema.
func TestGoldenEvents(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[jobs.Kind]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var ev jobs.Event
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			seen[ev.Kind] = true
			if err := schema.ValidateEvent(data); err != nil {
				t.Error(err)
			}
		})
	}
	for _, k := range []jobs.Kind{jobs.KindCreated, jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected} {
		if !seen[k] {
			t.Errorf("no golden %s event in %s", k, goldenDir)
		}
	}
}

// golden reads a golden event as a generic object, to change it.
func golden(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEventSchemas checks that each event schema refuses what the worker
// never publishes, and accepts the variations it does.
func TestEventSchemas(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		change func(ev map[string]any)
		valid  bool
	}{
		{"created", "created.json", func(map[string]any) {}, true},
		{"created without instance", "created.json", func(ev map[string]any) { delete(ev, "instance") }, false},
		{"created without metadata", "created.json", func(ev map[string]any) { delete(ev, "metadata") }, false},
		{"created with empty metadata", "created.json", func(ev map[string]any) { ev["metadata"] = map[string]any{} }, true},
		{"created with a non-string metadata value", "created.json", func(ev map[string]any) { ev["metadata"] = map[string]any{"n": 1} }, false},
		{"created with a time that is not RFC 3339", "created.json", func(ev map[string]any) { ev["time"] = "14/03/2025 08:22" }, false},
		{"created without request_id", "created.json", func(ev map[string]any) { ev["request_id"] = "" }, false},
		{"instance without id", "created.json", func(ev map[string]any) { delete(ev["instance"].(map[string]any), "id") }, false},
		{"instance with unknown fields", "created.json", func(ev map[string]any) { ev["instance"].(map[string]any)["zone"] = "b" }, true},
		{"event with a field added later", "created.json", func(ev map[string]any) { ev["trace_id"] = "abc" }, true},
		{"completed", "completed.json", func(map[string]any) {}, true},
		{"completed but pending", "completed.json", func(ev map[string]any) { ev["instance"].(map[string]any)["status"] = "pending" }, false},
		{"completed without api_calls", "completed.json", func(ev map[string]any) { delete(ev, "api_calls") }, false},
		{"completed without duration_ms (it was 0)", "completed.json", func(ev map[string]any) { delete(ev, "duration_ms") }, true},
		{"failed from the API", "failed-validation-error.json", func(map[string]any) {}, true},
		{"failed without error", "failed-validation-error.json", func(ev map[string]any) { delete(ev, "error") }, false},
		{"failed with an empty code", "failed-validation-error.json", func(ev map[string]any) { ev["error"].(map[string]any)["code"] = "" }, false},
		{"failed with http_status 40", "failed-validation-error.json", func(ev map[string]any) { ev["error"].(map[string]any)["http_status"] = 40 }, false},
		{"INVALID_REQUEST", "failed-invalid-request.json", func(map[string]any) {}, true},
		{"INVALID_REQUEST without details", "failed-invalid-request.json", func(ev map[string]any) { delete(ev["error"].(map[string]any), "details") }, false},
		{"INVALID_REQUEST with details not field errors", "failed-invalid-request.json", func(ev map[string]any) {
			ev["error"].(map[string]any)["details"] = map[string]any{"field": "name"}
		}, false},
		{"failed with instance", "failed-instance-failed.json", func(map[string]any) {}, true},
		{"failed with instance_id alone", "failed-instance-failed.json", func(ev map[string]any) { delete(ev, "instance_deleted") }, false},
		{"failed with instance_deleted alone", "failed-instance-failed.json", func(ev map[string]any) { delete(ev, "instance_id") }, false},
		{"rejected without request_id", "rejected.json", func(map[string]any) {}, true},
		{"rejected conflict", "rejected-idempotency-conflict.json", func(map[string]any) {}, true},
		{"rejected without stream_sequence", "rejected.json", func(ev map[string]any) { delete(ev, "stream_sequence") }, false},
		{"rejected with a code of failed", "rejected.json", func(ev map[string]any) { ev["error"].(map[string]any)["code"] = "INSTANCE_FAILED" }, false},
		{"rejected with a bad request_id", "rejected.json", func(ev map[string]any) { ev["request_id"] = "a b" }, false},
		{"unknown kind", "created.json", func(ev map[string]any) { ev["kind"] = "deleted" }, false},
		{"no kind", "created.json", func(ev map[string]any) { delete(ev, "kind") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := golden(t, tt.file)
			tt.change(ev)
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			err = schema.ValidateEvent(data)
			if (err == nil) != tt.valid {
				t.Errorf("ValidateEvent: %v, want valid %t", err, tt.valid)
			}
		})
	}
}

// TestEventsFromJobs validates events built with the jobs package the way
// the worker builds them, including the zero cases golden files do not show.
func TestEventsFromJobs(t *testing.T) {
	deleted := false
	tests := []struct {
		name string
		ev   func(t *testing.T) *jobs.Event
	}{
		{"failed without metadata", func(t *testing.T) *jobs.Event {
			ev := jobs.NewEvent(jobs.KindFailed, "req-1", nil, fixedTime)
			ev.Error = &jobs.EventError{Code: jobs.CodeRetriesExhausted, Message: "gave up after 20 attempts"}
			ev.InstanceID, ev.InstanceDeleted = "inst_1", &deleted
			return ev
		}},
		{"too large", func(t *testing.T) *jobs.Event {
			_, err := jobs.DecodeRequest([]byte(`{"request_id":"req-big","pad":"` + strings.Repeat("x", jobs.MaxRequestSize) + `"}`))
			ev := jobs.NewEvent(jobs.KindFailed, "req-big", nil, fixedTime)
			var verr *jobs.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("DecodeRequest: %v", err)
			}
			ev.Error = &jobs.EventError{Code: jobs.CodeInvalidRequest, Message: verr.Error(), Details: jobs.FieldErrorsJSON(verr.Fields)}
			return ev
		}},
		{"rejected not JSON", func(t *testing.T) *jobs.Event {
			ev := jobs.NewEvent(jobs.KindRejected, "", nil, fixedTime)
			ev.Error = &jobs.EventError{Code: jobs.CodeMalformedMessage, Message: "reject message: message is not a JSON object"}
			ev.StreamSequence = 1
			return ev
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.ev(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.ValidateEvent(data); err != nil {
				t.Errorf("%s: %v", data, err)
			}
		})
	}
}

// TestValidateEventInput checks the errors for input that is no event at all.
func TestValidateEventInput(t *testing.T) {
	for _, tt := range []struct{ name, body string }{
		{"not JSON", "created"},
		{"array", `[{"kind":"created"}]`},
		{"trailing data", `{"kind":"created"} x`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := schema.ValidateEvent([]byte(tt.body)); err == nil {
				t.Error("ValidateEvent accepted it")
			}
		})
	}
}

// TestFiles checks that FS holds every schema EventFile names.
func TestFiles(t *testing.T) {
	names := []string{schema.RequestFile, schema.DefsFile}
	for _, k := range []jobs.Kind{jobs.KindCreated, jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected} {
		names = append(names, schema.EventFile(k))
	}
	for _, n := range names {
		data, err := fs.ReadFile(schema.FS(), n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil || doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: not a 2020-12 JSON Schema (%v)", n, err)
		}
	}
	if got := schema.EventFile("deleted"); got != "" {
		t.Errorf("EventFile(deleted) = %q", got)
	}
}

var fixedTime = time.Date(2025, 3, 14, 8, 22, 0, 0, time.UTC)
