package jobs_test

import (
	"testing"

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
