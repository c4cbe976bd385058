package worker

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simulatePolls runs one instance that starts to run after provision
// through a schedule on a simulated clock, teaches the planner what the
// schedule found, and returns the polls made and how late the running
// instance was noticed.
func simulatePolls(p *pollPlanner, provision time.Duration) (polls int, late time.Duration) {
	created := time.Unix(1_000_000, 0)
	s := p.schedule("standard-4", "eu-west-1", created, false)
	now := created
	for {
		now = now.Add(s.next(now))
		if s.skip(now) {
			continue
		}
		polls++
		age := now.Sub(created)
		s.polled(now, age >= provision)
		if age >= provision {
			if d, ok := s.estimate(); ok {
				p.observe("standard-4", "eu-west-1", d)
			}
			return polls, age - provision
		}
	}
}

// TestPollPlannerLearns checks that once a plan and region have history the
// schedule notices a running instance within a tenth of its provisioning
// time with at most three polls, including after the provisioning time
// moves, and that what it learns does not drift upward from the time it
// noticed (it would if it learned the moment of noticing).
func TestPollPlannerLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	jittered := func(base time.Duration) func(int) time.Duration {
		return func(int) time.Duration { return time.Duration(float64(base) * (0.9 + 0.2*rng.Float64())) }
	}
	for _, tc := range []struct {
		name      string
		provision func(i int) time.Duration
		n, judged int // instances, of which the last judged are checked
	}{
		{"fixed 2s", func(int) time.Duration { return 2 * time.Second }, 300, 200},
		{"60s ±10%", jittered(60 * time.Second), 300, 200},
		{"20s ±10%", jittered(20 * time.Second), 300, 200},
		{"faster: 60s then 30s", func(i int) time.Duration {
			if i < 150 {
				return 60 * time.Second
			}
			return 30 * time.Second
		}, 300, 100},
		{"slower: 30s then 90s", func(i int) time.Duration {
			if i < 150 {
				return 30 * time.Second
			}
			return 90 * time.Second
		}, 300, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPlanner(1)
			var ratios []float64
			worstPolls, totalPolls := 0, 0
			for i := range tc.n {
				prov := tc.provision(i)
				polls, late := simulatePolls(p, prov)
				if i >= tc.n-tc.judged {
					ratios = append(ratios, float64(late)/float64(prov))
					worstPolls = max(worstPolls, polls)
					totalPolls += polls
				}
			}
			slices.Sort(ratios)
			if p95 := ratios[len(ratios)*95/100]; p95 >= 0.10 {
				t.Errorf("95th percentile of lateness = %.1f%% of the provisioning time, want under 10%%", 100*p95)
			}
			if mean := float64(totalPolls) / float64(tc.judged); mean > 3 {
				t.Errorf("mean polls per instance = %.2f, want at most 3", mean)
			}
			if worstPolls > 5 {
				t.Errorf("an instance needed %d polls, want at most 5", worstPolls)
			}
		})
	}
}

// TestPollEstimate checks what a schedule tells the planner.
func TestPollEstimate(t *testing.T) {
	created := time.Unix(1_000_000, 0)
	learned := testPlanner(2)
	for range pollMinHistory {
		learned.observe("p", "r", 10*time.Second)
	}
	cold := testPlanner(3)
	for _, tc := range []struct {
		name    string
		planner *pollPlanner
		resumed bool
		polls   int // polls before the one that saw it running; -1: none at all
		want    func(s *pollSchedule) (time.Duration, bool)
	}{
		{"create answer already running", cold, false, -1, func(*pollSchedule) (time.Duration, bool) { return 0, true }},
		{"first cold poll running: half its age", cold, false, 0, func(s *pollSchedule) (time.Duration, bool) { return s.last / 2, true }},
		{"between the last pending poll and the running one", cold, false, 2, func(s *pollSchedule) (time.Duration, bool) { return (s.pending + s.last) / 2, true }},
		{"first dense poll running: a dense step earlier", learned, false, 0, func(s *pollSchedule) (time.Duration, bool) {
			return s.last - time.Duration(float64(s.last)*pollDenseStep), true
		}},
		{"resumed, running at once: nothing learned", cold, true, 0, func(*pollSchedule) (time.Duration, bool) { return 0, false }},
		{"resumed, running later", cold, true, 1, func(s *pollSchedule) (time.Duration, bool) { return (s.pending + s.last) / 2, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.planner.schedule("p", "r", created, tc.resumed)
			now := created
			for i := range tc.polls + 1 {
				now = now.Add(s.next(now))
				s.polled(now, i == tc.polls)
			}
			if tc.resumed && s.pending < 0 && s.last != 0 {
				t.Errorf("a resumed schedule's first poll came after %s, want at once", s.last)
			}
			got, ok := s.estimate()
			want, wantOK := tc.want(s)
			if got != want || ok != wantOK {
				t.Errorf("estimate() = %s, %v; want %s, %v", got, ok, want, wantOK)
			}
		})
	}
}

// TestPollDenseGrid checks that dense polls fall on the grid that starts at
// the end of the quiet wait, however late the previous poll came back.
func TestPollDenseGrid(t *testing.T) {
	p := testPlanner(4)
	for i := range pollMinHistory {
		p.observe("p", "r", 10*time.Second+time.Duration(i)*time.Second)
	}
	created := time.Unix(1_000_000, 0)
	s := p.schedule("p", "r", created, false)
	now := created.Add(s.next(created))
	if got := now.Sub(created); got != s.quietUntil {
		t.Fatalf("first poll at %s, want at the end of the quiet wait %s", got, s.quietUntil)
	}
	for i := 1; i <= 3; i++ {
		now = now.Add(s.step / 3) // the GET took a third of a step
		now = now.Add(s.next(now))
		if want := s.quietUntil + time.Duration(i)*s.step; now.Sub(created) != want {
			t.Fatalf("poll %d at %s, want %s", i+1, now.Sub(created), want)
		}
	}
}

// TestPollHerd checks that a burst of new instances of one plan and region,
// with no history yet, polls as a herd: an instance younger than one seen
// pending a moment ago skips its poll, so the burst makes a few polls per
// instance instead of each its whole backoff schedule, and every instance is
// still found within the longest backoff wait of running.
func TestPollHerd(t *testing.T) {
	const n, provision = 200, 60 * time.Second
	run := func(shared bool) (gets int, worst time.Duration) {
		type inst struct {
			s             *pollSchedule
			created, wake time.Time
			done          bool
		}
		planner := testPlanner(5)
		base := time.Unix(1_000_000, 0)
		xs := make([]*inst, n)
		for i := range xs {
			p := planner
			if !shared {
				p = testPlanner(6)
			}
			created := base.Add(time.Duration(i) * 4 * time.Second / n) // all created within 4s
			s := p.schedule("standard-4", "eu-west-1", created, false)
			xs[i] = &inst{s: s, created: created, wake: created.Add(s.next(created))}
		}
		for {
			var x *inst
			for _, y := range xs {
				if !y.done && (x == nil || y.wake.Before(x.wake)) {
					x = y
				}
			}
			if x == nil {
				return gets, worst
			}
			now := x.wake
			if x.s.skip(now) {
				x.wake = now.Add(x.s.next(now))
				continue
			}
			gets++
			age := now.Sub(x.created)
			x.s.polled(now, age >= provision)
			if age >= provision {
				x.done, worst = true, max(worst, age-provision)
				continue
			}
			x.wake = now.Add(x.s.next(now))
		}
	}
	alone, _ := run(false)
	herd, worst := run(true)
	t.Logf("GET calls: %d polling alone, %d as a herd; found at most %s late", alone, herd, worst)
	if herd*3 > alone {
		t.Errorf("the herd made %d polls, alone they make %d: want at most a third", herd, alone)
	}
	if worst > 15*time.Second {
		t.Errorf("an instance of the herd was found %s after it ran, want at most PollMax (15s)", worst)
	}
}

// TestPollArrivals runs the polling benchmark's workload on a simulated
// clock: six plans and regions with base times from 22s to 109s, ±10% per
// instance, 360 instances arriving over ten minutes, so that instances of a
// plan and region overlap. Once a plan and region have history, an instance
// needs at most three polls on average and is found within a tenth of its
// provisioning time: what the herd skips while the plan and region are new
// must not spoil what is learned.
func TestPollArrivals(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	planner := testPlanner(7)
	bases := []time.Duration{22 * time.Second, 40 * time.Second, 57 * time.Second, 75 * time.Second, 92 * time.Second, 109 * time.Second}
	type inst struct {
		s             *pollSchedule
		key           string
		created, wake time.Time
		provision     time.Duration
		done, warm    bool
		polls         int
	}
	base := time.Unix(1_000_000, 0)
	var xs []*inst
	for i := range 360 {
		k := rng.IntN(len(bases))
		created := base.Add(time.Duration(i) * 10 * time.Minute / 360)
		xs = append(xs, &inst{key: "plan-" + string(rune('a'+k)), created: created, wake: created,
			provision: time.Duration(float64(bases[k]) * (0.9 + 0.2*rng.Float64()))})
	}
	completed := make(map[string]int)
	var ratios []float64
	warmPolls := 0
	for {
		var x *inst
		for _, y := range xs {
			if !y.done && (x == nil || y.wake.Before(x.wake)) {
				x = y
			}
		}
		if x == nil {
			break
		}
		now := x.wake
		switch {
		case x.s == nil: // the create answer: pending
			x.s = planner.schedule(x.key, "r", x.created, false)
			x.warm = completed[x.key] >= pollMinHistory
		case x.s.skip(now):
		default:
			x.polls++
			age := now.Sub(x.created)
			x.s.polled(now, age >= x.provision)
			if age >= x.provision {
				x.done = true
				if d, ok := x.s.estimate(); ok {
					planner.observe(x.key, "r", d)
				}
				completed[x.key]++
				if x.warm {
					warmPolls += x.polls
					ratios = append(ratios, float64(age-x.provision)/float64(x.provision))
				}
				continue
			}
		}
		x.wake = now.Add(x.s.next(now))
	}
	slices.Sort(ratios)
	mean := float64(warmPolls) / float64(len(ratios))
	p95 := ratios[len(ratios)*95/100]
	t.Logf("%d instances after warm-up: %.2f polls each, lateness p95 %.1f%%", len(ratios), mean, 100*p95)
	// The AWS EC2 waiter needs about 4.2 calls on such times (make bench);
	// the jitter makes this figure vary by a few hundredths from run to run.
	if mean >= 4 {
		t.Errorf("%.2f polls per instance after warm-up, want fewer than 4", mean)
	}
	if p95 >= 0.10 {
		t.Errorf("95th percentile of lateness = %.1f%% of the provisioning time, want under 10%%", 100*p95)
	}
}

// TestPollHerdStuckInstance: an older instance stuck pending must not keep a
// younger one of the same plan and region from being polled for ever.
func TestPollHerdStuckInstance(t *testing.T) {
	t.Parallel()
	planner := testPlanner(8)
	base := time.Unix(1_000_000, 0)
	stuck := planner.schedule("standard-4", "eu-west-1", base, false)
	born := base.Add(time.Minute)
	young := planner.schedule("standard-4", "eu-west-1", born, false)
	stuckWake := base.Add(stuck.next(base))
	youngWake := born.Add(young.next(born))
	lastOwn := born
	longest := time.Duration(0)
	for end := base.Add(15 * time.Minute); stuckWake.Before(end) || youngWake.Before(end); {
		if stuckWake.Before(youngWake) {
			stuck.polled(stuckWake, false) // pending for ever
			stuckWake = stuckWake.Add(stuck.next(stuckWake))
			continue
		}
		now := youngWake
		if !young.skip(now) {
			young.polled(now, false)
			longest = max(longest, now.Sub(lastOwn))
			lastOwn = now
		}
		youngWake = now.Add(young.next(now))
	}
	if limit := (pollHerdMaxQuiet + 1) * planner.max; longest > limit {
		t.Errorf("the younger instance went %s without a poll of its own, want at most %s", longest, limit)
	}
	if limit := (pollHerdMaxQuiet + 1) * planner.max; lastOwn.Before(base.Add(15*time.Minute - limit)) {
		t.Errorf("the younger instance's last own poll was at %s, long before the end", lastOwn.Sub(base))
	}
}

// testPlanner returns a planner with the worker's default poll settings and
// a jitter seeded with seed, so that a test's schedules are the same on every
// run.
func testPlanner(seed uint64) *pollPlanner {
	rng := rand.New(rand.NewPCG(seed, 1))
	return &pollPlanner{initial: time.Second, max: 15 * time.Second, jitter: func(d time.Duration) time.Duration {
		if d <= 0 {
			return 0
		}
		return d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
	}}
}
