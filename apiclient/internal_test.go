package apiclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 14, 8, 22, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{name: "absent", value: "", want: 0},
		{name: "seconds", value: "3", want: 3 * time.Second},
		{name: "seconds with spaces", value: " 3 ", want: 3 * time.Second},
		{name: "zero", value: "0", want: 0},
		{name: "negative", value: "-5", want: 0},
		{name: "fraction", value: "0.25", want: 250 * time.Millisecond},
		{name: "huge is capped", value: "999999999999", want: maxRetryAfter},
		{name: "http date", value: "Fri, 14 Mar 2025 08:22:30 GMT", want: 30 * time.Second},
		{name: "http date in the past", value: "Fri, 14 Mar 2025 08:21:00 GMT", want: 0},
		{name: "http date far ahead is capped", value: "Sat, 15 Mar 2025 08:22:00 GMT", want: maxRetryAfter},
		{name: "rfc 850 date", value: "Friday, 14-Mar-25 08:22:10 GMT", want: 10 * time.Second},
		{name: "garbage", value: "soon", want: 0},
		{name: "nan", value: "NaN", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "  hello  ", want: "hello"},
		{name: "key redacted", in: "key KEY123 here", want: "key [REDACTED] here"},
		{name: "invalid utf-8 dropped", in: "a\xffb", want: "ab"},
		{name: "cut rune dropped", in: string(make([]byte, maxMessage-1)) + "é", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sanitize(tt.in, "KEY123"); got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestGateProbe drives a gate directly: while it is closed exactly one of
// many waiters is let through at a time, and the probe's outcome decides for
// the others.
func TestGateProbe(t *testing.T) {
	t.Parallel()
	const waiters = 10
	tests := []struct {
		name string
		// outcomes of the successive probes; the gate must open after the
		// last, which is outcomeAnswered.
		outcomes []gateOutcome
	}{
		{name: "success opens", outcomes: []gateOutcome{outcomeAnswered}},
		{name: "throttled again", outcomes: []gateOutcome{outcomeThrottled, outcomeAnswered}},
		{name: "network error then success", outcomes: []gateOutcome{outcomeNoAnswer, outcomeAnswered}},
		{name: "abandoned probe", outcomes: []gateOutcome{outcomeAbandoned, outcomeAnswered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &gate{initial: 20 * time.Millisecond}
			g.leave(false, outcomeThrottled, 0) // closed for 20ms

			var probes, through atomic.Int64
			probeIn := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel() // on a failure, so the waiters return
			for range waiters {
				wg.Go(func() {
					probe, err := g.enter(ctx)
					if err != nil {
						return
					}
					if probe {
						probes.Add(1)
						select {
						case probeIn <- struct{}{}:
						case <-ctx.Done():
						}
						return
					}
					through.Add(1)
				})
			}
			for i, o := range tt.outcomes {
				select {
				case <-probeIn:
				case <-time.After(5 * time.Second):
					t.Fatalf("probe %d: no caller was let through", i)
				}
				// While the probe is out nobody else gets in.
				time.Sleep(30 * time.Millisecond)
				if n := through.Load(); n != 0 {
					t.Fatalf("probe %d: %d callers went through a closed gate", i, n)
				}
				g.leave(true, o, 0)
			}
			wg.Wait()
			if n := probes.Load(); n != int64(len(tt.outcomes)) {
				t.Errorf("%d probes, want %d", n, len(tt.outcomes))
			}
			if n := through.Load(); n != waiters-int64(len(tt.outcomes)) {
				t.Errorf("%d callers went through after the gate opened, want %d", n, waiters-len(tt.outcomes))
			}
			if probe, err := g.enter(context.Background()); probe || err != nil {
				t.Errorf("enter on an open gate = %v, %v", probe, err)
			}
		})
	}
}

func TestGateStaleAnswers(t *testing.T) {
	t.Parallel()
	g := &gate{initial: time.Hour}
	g.leave(false, outcomeThrottled, 0)
	// An answer to a request sent before the gate closed does not open it.
	g.leave(false, outcomeAnswered, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("enter on a closed gate = %v, want the ctx error", err)
	}
}
