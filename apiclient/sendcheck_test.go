package apiclient_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// TestWithSendCheck checks that the check runs before every attempt and that
// an attempt it refuses is never sent, is not retried, and does not leave
// the endpoint's overload gate closed to the next caller.
func TestWithSendCheck(t *testing.T) {
	t.Parallel()
	errLost := errors.New("lease lost")
	tests := []struct {
		name       string
		statuses   []int
		refuse     int // the check refuses from this call on (1-based); 0 never
		wantSent   int64
		wantChecks int64
		wantErr    error // nil for success
	}{
		{name: "allowed", statuses: []int{201}, wantSent: 1, wantChecks: 1},
		{name: "refused: nothing sent", statuses: []int{201}, refuse: 1, wantSent: 0, wantChecks: 1, wantErr: errLost},
		{name: "checked before each retry", statuses: []int{503, 503, 201}, wantSent: 3, wantChecks: 3},
		{name: "refused after an overload wait", statuses: []int{503, 201}, refuse: 2, wantSent: 1, wantChecks: 2, wantErr: errLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, sent := newTestClient(t, sequence(testInstance("inst_1"), tt.statuses...), nil)
			var checks atomic.Int64
			check := func(context.Context) error {
				if n := checks.Add(1); tt.refuse > 0 && n >= int64(tt.refuse) {
					return errLost
				}
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var inst *apiclient.Instance
			err := c.Retry(ctx, func(ctx context.Context) error {
				var err error
				inst, err = c.CreateInstance(apiclient.WithSendCheck(ctx, check), apiclient.CreateInstanceRequest{Name: "n", Plan: "p", Region: "r", Image: "i"}, "req-1")
				return err
			})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("create: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("create error %v, want one wrapping %v", err, tt.wantErr)
			case tt.wantErr != nil && apiclient.Retryable(err):
				t.Errorf("a refused attempt is Retryable: %v", err)
			case tt.wantErr == nil && inst.ID != "inst_1":
				t.Errorf("instance %q, want inst_1", inst.ID)
			}
			if got := sent.Load(); got != tt.wantSent {
				t.Errorf("server received %d creates, want %d", got, tt.wantSent)
			}
			if got := checks.Load(); got != tt.wantChecks {
				t.Errorf("check ran %d times, want %d", got, tt.wantChecks)
			}
			// The gate is open to the next caller, checked or not.
			if _, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n", Plan: "p", Region: "r", Image: "i"}, "req-2"); err != nil && ctx.Err() != nil {
				t.Errorf("the next create waited for ever: %v", err)
			}
		})
	}
}
