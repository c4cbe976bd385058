package worker

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// goroutineID returns the calling goroutine's ID, from its stack trace.
func goroutineID(t *testing.T) uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf) // "goroutine", ID, "[running]:", ...
	id, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		t.Fatalf("goroutine ID from %q: %v", buf, err)
	}
	return id
}

// TestRunnersReuse checks that steps one after another run on the same
// goroutine (so its grown stack is reused), that a step never waits for a
// busy runner, that an idle runner exits, and that stop ends the waiting
// ones (synctest fails a test whose goroutines are left blocked).
func TestRunnersReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRunners(time.Minute)
		runOn := func() uint64 {
			ids := make(chan uint64, 1)
			r.run(func() { ids <- goroutineID(t) })
			id := <-ids
			synctest.Wait() // the runner is back waiting for a step
			return id
		}

		first := runOn()
		for i := range 5 {
			if id := runOn(); id != first {
				t.Fatalf("step %d ran on goroutine %d, the first on %d: want the same runner", i+2, id, first)
			}
		}

		// A step that waits for another: the second must get a runner of
		// its own, or neither ends.
		release, ran := make(chan struct{}), make(chan uint64, 2)
		r.run(func() { <-release; ran <- goroutineID(t) })
		r.run(func() { close(release); ran <- goroutineID(t) })
		if a, b := <-ran, <-ran; a == b {
			t.Fatalf("two overlapping steps ran on the same goroutine %d", a)
		}
		synctest.Wait()

		// Idle past the limit: the runners exit, and the next step starts one.
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if id := runOn(); id == first {
			t.Fatalf("a step after %s idle ran on the old runner %d: want it gone", time.Minute, id)
		}
		r.stop()
	})
}
