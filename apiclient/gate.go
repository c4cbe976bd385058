package apiclient

import (
	"context"
	"sync"
	"time"
)

// gate slows every caller of one endpoint while the API says it is
// overloaded, so that a storm of 503s does not become a flood of retries.
//
// A 503 or 429 closes the gate until its Retry-After has passed (or the
// client's RetryInitial when there is none). Then one caller goes through as
// a probe while the others wait for its outcome: any other answer opens the
// gate for all; another 503 or 429 closes it again; no answer at all (a
// network error) closes it for the same wait once more, and a probe whose
// caller gave up lets the next caller probe at once. So while the API is
// overloaded one client sends about one request per Retry-After per
// endpoint.
//
// Waiters sleep on a channel that is closed, and replaced, whenever the
// state changes; there is no polling and no goroutine per waiter.
type gate struct {
	initial time.Duration // the wait when a 503 or 429 has no Retry-After

	mu        sync.Mutex
	throttled bool
	until     time.Time     // when the next probe may go
	wait      time.Duration // the last wait, repeated when a probe got no answer
	probing   bool          // a probe is in flight
	changed   chan struct{} // closed on the next change; nil when nobody waits
}

// gateOutcome is what one attempt tells the gate.
type gateOutcome int

const (
	outcomeAbandoned gateOutcome = iota // the caller's ctx ended, or no request was sent
	outcomeNoAnswer                     // a network error or timeout
	outcomeAnswered                     // any response but 503 and 429
	outcomeThrottled                    // 503 or 429
)

// enter waits until the caller may send a request. probe is true when the
// caller is the one probe of a closed gate; it must then report its outcome
// with leave(true, ...). enter returns ctx.Err() if ctx ends first.
func (g *gate) enter(ctx context.Context) (probe bool, err error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		g.mu.Lock()
		if !g.throttled {
			g.mu.Unlock()
			return false, nil
		}
		var expired <-chan time.Time
		if !g.probing {
			d := time.Until(g.until)
			if d <= 0 {
				g.probing = true
				g.mu.Unlock()
				return true, nil
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		changed := g.changed
		g.mu.Unlock()

		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-changed:
		case <-expired:
		}
	}
}

// leave reports the outcome of an attempt that enter let through;
// retryAfter is the server's Retry-After for outcomeThrottled.
func (g *gate) leave(probe bool, outcome gateOutcome, retryAfter time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if probe {
		g.probing = false
	}
	now := time.Now()
	switch outcome {
	case outcomeThrottled:
		if retryAfter <= 0 {
			retryAfter = g.initial
		}
		until := now.Add(retryAfter)
		// A request sent before the gate closed may answer late; only the
		// probe may bring the reopening closer.
		if probe || !g.throttled || until.After(g.until) {
			g.until, g.wait = until, retryAfter
		}
		g.throttled = true
	case outcomeAnswered:
		// An answer to a request sent before the gate closed says nothing
		// about the overload since.
		if probe {
			g.throttled = false
		}
	case outcomeNoAnswer:
		if probe {
			g.until = now.Add(g.wait)
		}
	case outcomeAbandoned:
	}
	// Other outcomes of a non-probe change nothing a waiter looks at.
	if probe || outcome == outcomeThrottled {
		g.broadcast()
	}
}

// broadcast wakes every waiter. g.mu must be held.
func (g *gate) broadcast() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}
