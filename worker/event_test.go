package worker

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cloudnexus/provisioner/jobs"
)

// TestEventHeaderNames: eventHeaderNames, which sizes the header map of
// every event, names exactly the headers setEventHeaders sets.
func TestEventHeaderNames(t *testing.T) {
	h := nats.Header{}
	setEventHeaders(h, &jobs.Event{RequestID: "req-1", Kind: jobs.KindCompleted, Time: time.Now()})
	got := slices.Sorted(maps.Keys(h))
	want := slices.Sorted(slices.Values(eventHeaderNames[:]))
	if !slices.Equal(got, want) {
		t.Errorf("setEventHeaders sets %q; eventHeaderNames lists %q", got, want)
	}
}
