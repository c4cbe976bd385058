package worker

import (
	"sync"
	"time"
)

// runners runs job steps on goroutines kept between steps. A step goes deep
// (JSON decoding under the NATS client, the HTTP/2 client, the record
// encoder) and grows its goroutine's stack several times; on a new
// goroutine per step, every step paid for growing a fresh stack again,
// copying it at each doubling (3.1% of the CPU samples of a throughput
// benchmark run, about 1% with runners). A runner that finishes a step
// waits for the next one, and exits after idle without one; the runtime
// shrinks the stacks of runners that sit idle through collections.
//
// There is no bound here: steps are bounded by the worker's step permits,
// so at most that many runners are busy, plus the few that are on their way
// back to waiting when a step starts.
type runners struct {
	work chan func() // unbuffered: a send succeeds only when a runner waits
	idle time.Duration
	quit chan struct{}
	wg   sync.WaitGroup
}

// runnerIdle is how long a runner waits for a step before it exits.
const runnerIdle = 10 * time.Second

func newRunners(idle time.Duration) *runners {
	return &runners{work: make(chan func()), idle: idle, quit: make(chan struct{})}
}

// run runs f on a waiting runner, or on a new one when none waits.
func (r *runners) run(f func()) {
	select {
	case r.work <- f:
	default:
		r.wg.Add(1)
		go r.loop(f)
	}
}

func (r *runners) loop(f func()) {
	defer r.wg.Done()
	t := time.NewTimer(r.idle)
	defer t.Stop()
	for {
		f()
		f = nil
		t.Reset(r.idle)
		select {
		case f = <-r.work:
		case <-t.C:
			return
		case <-r.quit:
			return
		}
	}
}

// stop makes the waiting runners exit, and waits until every runner has:
// call it once no more steps can start.
func (r *runners) stop() {
	close(r.quit)
	r.wg.Wait()
}
