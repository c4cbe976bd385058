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
		polls++
		if age := now.Sub(created); age >= provision {
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
			p := &pollPlanner{initial: time.Second, max: 15 * time.Second}
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
	learned := &pollPlanner{initial: time.Second, max: 15 * time.Second}
	for range pollMinHistory {
		learned.observe("p", "r", 10*time.Second)
	}
	cold := &pollPlanner{initial: time.Second, max: 15 * time.Second}
	for _, tc := range []struct {
		name    string
		planner *pollPlanner
		resumed bool
		polls   int // polls before the one that saw it running; -1: none at all
		want    func(s *pollSchedule) (time.Duration, bool)
	}{
		{"create answer already running", cold, false, -1, func(*pollSchedule) (time.Duration, bool) { return 0, true }},
		{"first cold poll running: half its age", cold, false, 0, func(s *pollSchedule) (time.Duration, bool) { return s.last / 2, true }},
		{"between the last pending poll and the running one", cold, false, 2, func(s *pollSchedule) (time.Duration, bool) { return (s.prev + s.last) / 2, true }},
		{"first dense poll running: a dense step earlier", learned, false, 0, func(s *pollSchedule) (time.Duration, bool) {
			return s.last - time.Duration(float64(s.last)*pollDenseStep), true
		}},
		{"resumed, running at once: nothing learned", cold, true, 0, func(*pollSchedule) (time.Duration, bool) { return 0, false }},
		{"resumed, running later", cold, true, 1, func(s *pollSchedule) (time.Duration, bool) { return (s.prev + s.last) / 2, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.planner.schedule("p", "r", created, tc.resumed)
			now := created
			for range tc.polls + 1 {
				now = now.Add(s.next(now))
			}
			if tc.resumed && s.prev < 0 && s.last != 0 {
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
	p := &pollPlanner{initial: time.Second, max: 15 * time.Second}
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
