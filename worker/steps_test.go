package worker

import (
	"context"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// TestIdleFetchHoldsNoStepPermit checks that while the fetch loop waits for
// messages that do not come, it holds no step permit: parked jobs need the
// permits to poll, and a pull request waits up to FetchMaxWait.
func TestIdleFetchHoldsNoStepPermit(t *testing.T) {
	js := internalJetStream(t)
	sim, err := cnsim.Start(cnsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	api, err := apiclient.New(apiclient.Config{BaseURL: sim.URL(), APIKey: cnsim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)

	w, err := New(Config{JetStream: js, API: api, ManageStreams: true, Concurrency: 8, FetchMaxWait: 10 * time.Second, ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// Ready once the consumer is bound; a pull request is then waiting (or
	// about to) for the empty stream.
	for w.Ready() != nil {
		select {
		case err := <-done:
			t.Fatalf("Run returned at start: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	for i := range 20 {
		time.Sleep(10 * time.Millisecond)
		if held := len(w.steps); held != 0 {
			t.Fatalf("sample %d: the idle fetch loop holds %d of %d step permits", i, held, cap(w.steps))
		}
	}
}
