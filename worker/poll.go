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
// recently (a low quantile), then polls densely until past the longest, then
// backs off from the dense step. That finds a running instance within a tenth of its provisioning
// time with two or three calls.
//
// What is learned is an estimate of when the instance started to run, not
// when the worker noticed: the middle of the interval between the last poll
// that saw it pending and the one that saw it running. Learning the moment
// of noticing would ratchet: each instance is noticed a little after the
// learned time, which then becomes the next learned time, and so on upward.
// A first dense poll that already sees the instance running says the time
// is earlier than learned, and the estimate moves down, so the schedule
// follows an API that gets faster as well as one that slows. The dense step
// is pollDenseStep of the shortest recent time, or half the spread of recent
// times when that is smaller: when every instance takes the same time, the
// schedule can afford to be exact.
const (
	pollHistory       = 32                     // recent provisioning times kept per plan and region
	pollMinHistory    = 5                      // observations before the history is trusted
	pollDenseStep     = 0.08                   // dense polling step, as a fraction of the shortest time
	pollQuietQuantile = 0.1                    // where the quiet wait ends, as a quantile of recent times
	pollMinStep       = 100 * time.Millisecond // the densest polling
)

// pollPlanner learns provisioning times per plan and region and hands out
// poll schedules. It is safe for concurrent use.
type pollPlanner struct {
	initial, max time.Duration
	// jitter spreads a backoff wait; nil is the package's jitter. Tests set
	// a seeded one, so that their schedules are the same on every run.
	jitter func(time.Duration) time.Duration

	mu      sync.Mutex
	history map[string][]time.Duration // ring per plan/region, newest last
	pending map[string]pendingSeen     // per plan/region
}

// pollHerdMaxQuiet bounds, in units of PollMax, how long an instance
// without history may go without a poll of its own while the herd says it is
// pending.
const pollHerdMaxQuiet = 4

// pendingSeen is the oldest age at which an instance of a plan and region
// was lately seen still pending, and when: another instance of the same plan
// and region that is younger than that is most likely pending too. It lets
// a herd of new instances without history (a burst of creates) share one
// frontier of polls instead of each polling its whole backoff schedule.
type pendingSeen struct {
	age time.Duration
	at  time.Time
}

// pollSchedule is one instance's schedule; used by one goroutine at a time.
type pollSchedule struct {
	planner                *pollPlanner
	key                    string // plan and region
	createdAt              time.Time
	backoff, max           time.Duration
	quietUntil, denseUntil time.Duration // since createdAt; zero without history
	step                   time.Duration // zero without history
	// last is the age of the last poll (-1: none); pending the age until
	// which the instance is known, or taken by the herd, to have been
	// pending (-1: none). resumed is true for an instance created before
	// this schedule, whose first poll is at once and says little about when
	// it started to run.
	last, pending time.Duration
	resumed       bool
}

// schedule returns the schedule of an instance of plan in region created at
// createdAt. A resumed schedule polls at once.
func (p *pollPlanner) schedule(plan, region string, createdAt time.Time, resumed bool) *pollSchedule {
	key := plan + "\x00" + region
	s := &pollSchedule{planner: p, key: key, createdAt: createdAt, backoff: p.initial, max: p.max, last: -1, pending: -1, resumed: resumed}
	p.mu.Lock()
	h := slices.Clone(p.history[key])
	p.mu.Unlock()
	if len(h) < pollMinHistory {
		return s
	}
	slices.Sort(h)
	lo, hi := h[int(float64(len(h)-1)*pollQuietQuantile)], h[len(h)-1]
	s.step = max(min(time.Duration(float64(lo)*pollDenseStep), (hi-lo)/2), pollMinStep)
	s.quietUntil = lo
	s.denseUntil = hi + s.step
	s.backoff = s.step // past the dense window, back off from the dense step
	return s
}

// observe records that an instance of plan in region started to run after d.
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

// spread jitters a backoff wait d.
func (p *pollPlanner) spread(d time.Duration) time.Duration {
	if p == nil || p.jitter == nil {
		return jitter(d)
	}
	return p.jitter(d)
}

// next returns the wait before the next poll, at now.
func (s *pollSchedule) next(now time.Time) time.Duration {
	age := now.Sub(s.createdAt)
	var d time.Duration
	switch {
	case s.resumed && s.last < 0:
		d = 0
	case s.step == 0 || age >= s.denseUntil:
		d = s.planner.spread(s.backoff)
		s.backoff = min(s.backoff*3/2, max(s.max, s.step))
	case age < s.quietUntil:
		d = s.quietUntil - age
	default:
		// On the grid quietUntil + k*step, so the time a GET takes does not
		// stretch the step.
		k := (age-s.quietUntil)/s.step + 1
		d = s.quietUntil + k*s.step - age
	}
	return d
}

// skip reports, at the time of a planned poll of a schedule without
// history, whether another instance of the same plan and region older than
// this one was seen pending lately, so that this poll would most likely see
// pending too. The instance then waits for its next planned poll instead,
// and counts as pending until now. An instance faster than the one seen
// pending is found that much later at most; schedules with history do not
// skip.
func (s *pollSchedule) skip(now time.Time) bool {
	if s.step > 0 || (s.resumed && s.last < 0) {
		return false
	}
	age := now.Sub(s.createdAt)
	p := s.planner
	// However sure the herd is, an instance looks for itself now and then: an
	// older instance that is stuck pending keeps the frontier moving up and
	// would otherwise keep every younger one from ever being polled.
	if age-max(s.last, 0) >= pollHerdMaxQuiet*p.max {
		return false
	}
	p.mu.Lock()
	seen, ok := p.pending[s.key]
	p.mu.Unlock()
	if !ok || now.Sub(seen.at) > 2*p.max || age > seen.age {
		return false
	}
	s.pending = max(s.pending, age)
	return true
}

// polled records that the instance was polled at now and whether it was
// running; an answer that it was not running yet is shared with the herd
// of its plan and region.
func (s *pollSchedule) polled(now time.Time, running bool) {
	age := now.Sub(s.createdAt)
	s.last = age
	if running {
		return
	}
	s.pending = max(s.pending, age)
	if s.step > 0 {
		return
	}
	p := s.planner
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = make(map[string]pendingSeen)
	}
	// The frontier moves up with every older pending answer; a stale one
	// (the herd has run, or the last one was long ago) is replaced.
	if seen, ok := p.pending[s.key]; !ok || age >= seen.age || now.Sub(seen.at) > 2*p.max {
		p.pending[s.key] = pendingSeen{age: age, at: now}
	}
}

// estimate returns when the instance started to run, as told by the poll
// that found it running (or by the create answer, when no poll was made),
// and false when the polls say too little: a resumed instance found running
// at its first poll.
func (s *pollSchedule) estimate() (time.Duration, bool) {
	switch {
	case s.last < 0:
		return 0, !s.resumed // the create answer said running
	case s.pending >= 0:
		return (s.pending + s.last) / 2, true
	case s.resumed:
		return 0, false
	case s.step > 0:
		// Running at the first dense poll: earlier than learned, by how
		// much unknown. Moving down by a dense step of the learned time (at
		// least) lets a faster API be followed within a few dozen jobs even
		// when a steady one has shrunk the step to pollMinStep.
		return max(s.last-max(s.step/2, time.Duration(float64(s.last)*pollDenseStep)), 0), true
	default:
		return s.last / 2, true
	}
}
