package jobs_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
)

// benchRequest is a typical create request, as the load generator sends it.
var benchRequest = []byte(`{"request_id":"tp-000001","name":"vm-tp-000001","plan":"standard-4","region":"us-east-1","image":"ubuntu-22.04","ssh_keys":["ssh_key_bench"],"metadata":{"team":"bench"}}`)

// BenchmarkDecodeRequest measures DecodeRequest on a typical valid request:
// it runs for every message the worker takes.
func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := jobs.DecodeRequest(benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRequestReference is the same for the reference
// implementation (reference_test.go), to see what the fast paths save.
func BenchmarkDecodeRequestReference(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := decodeRequestReference(benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventEncode compares encoding a completed event with
// Event.AppendJSON and with json.Marshal (the same output).
func BenchmarkEventEncode(b *testing.B) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ev := jobs.NewEvent(jobs.KindCompleted, "tp-000001", map[string]string{"team": "bench"}, at)
	ev.Instance = &apiclient.Instance{ID: "inst_0123abcd", Name: "vm-tp-000001", Status: "running", Region: "us-east-1",
		Plan: "standard-4", Image: "ubuntu-22.04", IPv4: "10.0.1.2", CreatedAt: &at}
	ev.DurationMS, ev.APICalls = 12, 1
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ev.AppendJSON(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFingerprint is the per-request fingerprint (JSON then SHA-256).
func BenchmarkFingerprint(b *testing.B) {
	r := jobs.Request{RequestID: "tp-000001", Name: "vm-tp-000001", Plan: "standard-4", Region: "us-east-1", Image: "ubuntu-22.04",
		SSHKeys: []string{"ssh_key_bench"}, Metadata: map[string]string{"team": "bench"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Fingerprint()
	}
}
