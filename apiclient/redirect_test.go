package apiclient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudnexus/provisioner/apiclient"
)

// TestRedirectNotFollowed checks that a redirect is the answer to a call:
// net/http would follow a 302 to a DELETE with a GET, and the GET's 200
// would read as a successful delete with nothing deleted. Each call must
// reach the server once, and fail with the 3xx, not retried, whether the
// Client built its HTTP client or was given one.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	redirect := func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/moved/") {
			writeJSON(w, http.StatusOK, testInstance("inst-1")) // what following would find
			return
		}
		w.Header().Set("Location", "/moved"+r.URL.Path)
		w.WriteHeader(http.StatusFound)
	}
	calls := map[string]func(context.Context, *apiclient.Client) error{
		"delete": func(ctx context.Context, c *apiclient.Client) error { return c.DeleteInstance(ctx, "inst-1") },
		"create": func(ctx context.Context, c *apiclient.Client) error {
			_, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "web-1", Plan: "standard-4", Region: "eu-west-1", Image: "ubuntu-24.04"}, "req-1")
			return err
		},
		"get": func(ctx context.Context, c *apiclient.Client) error {
			_, err := c.GetInstance(ctx, "inst-1")
			return err
		},
	}
	for _, given := range []bool{false, true} {
		for name, call := range calls {
			c, n := newTestClient(t, redirect, func(cfg *apiclient.Config) {
				if given {
					cfg.HTTPClient = &http.Client{}
				}
			})
			err := call(context.Background(), c)
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusFound || apiclient.Retryable(err) {
				t.Errorf("%s (client given: %v): error %v, want a 302 that is not retryable", name, given, err)
				continue
			}
			if !strings.Contains(err.Error(), "redirect not followed (Location: /moved/v1/instances") {
				t.Errorf("%s: error %q does not say where the redirect pointed", name, err)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("%s (client given: %v): the server got %d requests, want 1", name, given, got)
			}
		}
	}
}
