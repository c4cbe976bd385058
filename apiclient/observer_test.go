package apiclient_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/cloudnexus/provisioner/apiclient"
)

// TestObserverRetry checks that CallInfo.Retry marks exactly the attempts
// that repeat an earlier one of the same call, which the retries metric counts.
func TestObserverRetry(t *testing.T) {
	t.Parallel()
	errOnce := func() func() error {
		n := 0
		return func() error {
			if n++; n == 1 {
				return &apiclient.Error{Method: http.MethodGet, Path: "/x", StatusCode: http.StatusServiceUnavailable}
			}
			return nil
		}
	}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		call     func(ctx context.Context, c *apiclient.Client) error
		endpoint string
		want     []bool
	}{
		{
			name:    "get retried after two 503",
			handler: sequence(testInstance("inst_1"), 503, 503, 200),
			call: func(ctx context.Context, c *apiclient.Client) error {
				_, err := c.GetInstance(ctx, "inst_1")
				return err
			},
			endpoint: apiclient.EndpointGet,
			want:     []bool{false, true, true},
		},
		{
			name:    "create alone is one first attempt",
			handler: sequence(testInstance("inst_1"), 200),
			call: func(ctx context.Context, c *apiclient.Client) error {
				_, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "a"}, "k")
				return err
			},
			endpoint: apiclient.EndpointCreate,
			want:     []bool{false},
		},
		{
			name:    "create repeated by the caller's Retry",
			handler: sequence(testInstance("inst_1"), 503, 200),
			call: func(ctx context.Context, c *apiclient.Client) error {
				return c.Retry(ctx, func(ctx context.Context) error {
					_, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "a"}, "k")
					return err
				})
			},
			endpoint: apiclient.EndpointCreate,
			want:     []bool{false, true},
		},
		{
			name:    "list in a repeated outer op is a new call each time",
			handler: sequence(map[string]any{"instances": []any{}}, 200),
			call: func(ctx context.Context, c *apiclient.Client) error {
				fail := errOnce()
				return c.Retry(ctx, func(ctx context.Context) error {
					if _, err := c.ListInstances(ctx, apiclient.ListOptions{}); err != nil {
						return err
					}
					return fail()
				})
			},
			endpoint: apiclient.EndpointList,
			want:     []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got []bool
			c, _ := newTestClient(t, tt.handler, func(cfg *apiclient.Config) {
				cfg.Observer = func(ci apiclient.CallInfo) {
					mu.Lock()
					defer mu.Unlock()
					if ci.Endpoint != tt.endpoint {
						t.Errorf("call to %s, want only %s", ci.Endpoint, tt.endpoint)
					}
					got = append(got, ci.Retry)
				}
			})
			if err := tt.call(context.Background(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, tt.want) {
				t.Errorf("Retry of each attempt = %v, want %v", got, tt.want)
			}
		})
	}
}
