package worker

import (
	"slices"
	"sync"
	"time"
)

// Polling an instance until it runs trades API calls against how late the
// worker notices. Without history the schedule is capped exponential
// backoff with jitter (PollInitial growing by half each time up to PollMax).
// Once a plan and region have a few finished instances, the planner knows
// roughly how long they take: it waits quietly until the shortest time seen
// recently, then polls densely (every pollDenseStep of that time) until the
// longest, then falls back to backoff. That finds a running instance within
// a tenth of its provisioning time with a handful of calls.
const (
	pollHistory      = 32   // recent provisioning times kept per plan and region
	pollMinHistory   = 5    // observations before the history is trusted
	pollDenseStep    = 0.08 // dense polling step, as a fraction of the shortest time
	pollQuietQuantil = 0.1  // where the quiet wait ends, as a quantile of recent times
)

// pollPlanner learns provisioning times per plan and region and hands out
// poll schedules. It is safe for concurrent use.
type pollPlanner struct {
	initial, max time.Duration

	mu      sync.Mutex
	history map[string][]time.Duration // ring per plan/region, newest last
}

// pollSchedule is one instance's schedule; used by one goroutine.
type pollSchedule struct {
	createdAt              time.Time
	backoff, max           time.Duration
	quietUntil, denseUntil time.Duration // since createdAt; zero without history
	step                   time.Duration
}

func (p *pollPlanner) schedule(plan, region string, createdAt time.Time) *pollSchedule {
	s := &pollSchedule{createdAt: createdAt, backoff: p.initial, max: p.max}
	p.mu.Lock()
	h := slices.Clone(p.history[plan+"\x00"+region])
	p.mu.Unlock()
	if len(h) < pollMinHistory {
		return s
	}
	slices.Sort(h)
	lo := h[int(float64(len(h)-1)*pollQuietQuantil)]
	s.quietUntil, s.denseUntil = lo, h[len(h)-1]+lo/10
	s.step = max(time.Duration(float64(lo)*pollDenseStep), 100*time.Millisecond)
	return s
}

// observe records that an instance of plan in region ran after d.
func (p *pollPlanner) observe(plan, region string, d time.Duration) {
	key := plan + "\x00" + region
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.history == nil {
		p.history = make(map[string][]time.Duration)
	}
	h := append(p.history[key], d)
	if len(h) > pollHistory {
		h = h[len(h)-pollHistory:]
	}
	p.history[key] = h
}

// next returns the wait before the next poll, at now.
func (s *pollSchedule) next(now time.Time) time.Duration {
	age := now.Sub(s.createdAt)
	switch {
	case s.step == 0 || age >= s.denseUntil:
		d := s.backoff
		if s.step > 0 && d < s.step {
			d = s.step
		}
		s.backoff = min(s.backoff*3/2, s.max)
		return jitter(d)
	case age < s.quietUntil:
		return s.quietUntil - age
	default:
		return s.step
	}
}
