package jobs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
)

var update = flag.Bool("update", false, "rewrite golden files")

const goldenDir = "../testdata/golden"

// goldenEvents returns one event of each kind and failure, as the worker
// publishes them, keyed by the name of its file in testdata/golden.
func goldenEvents(t *testing.T) map[string]*jobs.Event {
	t.Helper()
	at := func(hms string) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, "2025-03-14T"+hms+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	createdAt := at("08:22:00")
	payments := map[string]string{"team": "payments"}
	pending := &apiclient.Instance{
		ID: "inst_29f8b3a1", Name: "worker-node-02", Status: "pending",
		Region: "eu-west-1", Plan: "standard-8", Image: "ubuntu-22.04", CreatedAt: &createdAt,
	}
	running := *pending
	running.Status, running.IPv4 = "running", "104.20.33.112"

	created := jobs.NewEvent(jobs.KindCreated, "req-7f3a9c", payments, at("08:22:00.412"))
	created.Instance = pending

	completed := jobs.NewEvent(jobs.KindCompleted, "req-7f3a9c", payments, at("08:22:48.625"))
	completed.Instance = &running
	completed.DurationMS = 48213
	completed.APICalls = 7

	// The API's 400, as its reference documents it.
	apiValidation := jobs.NewEvent(jobs.KindFailed, "req-bad-region", map[string]string{"team": "storefront"}, at("08:23:05.031"))
	apiValidation.Error = &jobs.EventError{
		Code:       "VALIDATION_ERROR",
		Message:    "Invalid region specified",
		Details:    json.RawMessage(`[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]`),
		HTTPStatus: 400,
	}

	// Local validation: the details are the decoder's field errors.
	req, err := jobs.DecodeRequest([]byte(`{"request_id":"req-missing-fields","name":"web-08","plan":8,"metadata":{"team":"payments"}}`))
	var verr *jobs.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("DecodeRequest: %v, want a validation error", err)
	}
	invalid := jobs.NewEvent(jobs.KindFailed, req.RequestID, req.Metadata, at("08:23:10.700"))
	invalid.Error = &jobs.EventError{Code: jobs.CodeInvalidRequest, Message: err.Error(), Details: jobs.FieldErrorsJSON(verr.Fields)}

	deleted := true
	instanceFailed := jobs.NewEvent(jobs.KindFailed, "req_db-replica_0001", map[string]string{"team": "data-platform"}, at("08:25:41.118"))
	instanceFailed.Error = &jobs.EventError{Code: jobs.CodeInstanceFailed, Message: "instance inst_5d07e2c4 reached status error"}
	instanceFailed.InstanceID = "inst_5d07e2c4"
	instanceFailed.InstanceDeleted = &deleted

	_, err = jobs.DecodeRequest([]byte(`{"name":"web-02","plan":"standard-4","region":"us-east-1","image":"ubuntu-22.04"}`))
	var rerr *jobs.RejectError
	if !errors.As(err, &rerr) {
		t.Fatalf("DecodeRequest: %v, want a reject", err)
	}
	rejected := jobs.NewEvent(jobs.KindRejected, "", nil, at("08:26:00.005"))
	rejected.Error = &jobs.EventError{Code: jobs.CodeMalformedMessage, Message: rerr.Reason}
	rejected.StreamSequence = 1042

	conflict := jobs.NewEvent(jobs.KindRejected, "req-7f3a9c", map[string]string{"team": "billing"}, at("08:27:13.250"))
	conflict.Error = &jobs.EventError{Code: jobs.CodeIdempotencyConflict, Message: "request_id req-7f3a9c was already used for a different request"}
	conflict.StreamSequence = 1187

	return map[string]*jobs.Event{
		"created":                       created,
		"completed":                     completed,
		"failed-validation-error":       apiValidation,
		"failed-invalid-request":        invalid,
		"failed-instance-failed":        instanceFailed,
		"rejected":                      rejected,
		"rejected-idempotency-conflict": conflict,
	}
}

// TestGoldenEvents compares each event's JSON with testdata/golden. After a
// deliberate change of the wire format, run go test ./jobs -update and review
// the diff.
func TestGoldenEvents(t *testing.T) {
	t.Parallel()
	events := goldenEvents(t)
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !strings.HasPrefix(name, string(ev.Kind)) {
				t.Fatalf("golden file %s holds a %s event", name, ev.Kind)
			}
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join(goldenDir, name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./jobs -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run go test ./jobs -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
			}

			// A consumer decoding the golden payload gets the same event back.
			var back jobs.Event
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			again, err := json.MarshalIndent(&back, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(again, '\n'), want) {
				t.Errorf("%s does not survive decoding and encoding again:\n%s", path, again)
			}
		})
	}

	t.Run("no stale files", func(t *testing.T) {
		t.Parallel()
		if *update {
			t.Skip("rewriting")
		}
		files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if _, ok := events[strings.TrimSuffix(filepath.Base(f), ".json")]; !ok {
				t.Errorf("%s has no event in goldenEvents; delete it or add one", f)
			}
		}
	})
}
