package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// A pollReplay is a peer's poll schedule replayed on a known provisioning
// time: the instance is created at 0 and is running from provision on; a
// call at t sees it running when t >= provision. The API's own latency is
// left out of the replays, which favours them slightly.
type pollReplay func(provision time.Duration, rng *rand.Rand) (calls int, delay time.Duration)

// awsWaiter replays the AWS SDK for Go v2 EC2 InstanceRunning waiter
// (service/ec2 NewInstanceRunningWaiter with MinDelay 15s and MaxDelay 120s,
// as the issue states; the SDK's generated default MaxDelay is 600s, which
// only matters past 120s): the first DescribeInstances is made at once, and
// after attempt n the wait is smithy-go's waiter.ComputeDelay: minDelay *
// 2^(n-1) up to maxDelay, with the attempt ceiling log2(max/min)+1, drawn
// uniformly from [minDelay, that delay) unless it equals minDelay.
func awsWaiter(minDelay, maxDelay time.Duration) pollReplay {
	return func(provision time.Duration, rng *rand.Rand) (int, time.Duration) {
		t := time.Duration(0)
		for attempt := int64(1); ; attempt++ {
			if t >= provision {
				return int(attempt), t - provision
			}
			t += awsDelay(attempt, minDelay, maxDelay, rng)
		}
	}
}

// awsDelay is ComputeDelay without the remaining-time clamp, which never
// applies here (the waiter's max wait is far above 120s).
func awsDelay(attempt int64, minDelay, maxDelay time.Duration, rng *rand.Rand) time.Duration {
	ceiling := math.Log(float64(maxDelay/minDelay))/math.Log(2) + 1
	var d time.Duration
	if attempt > int64(ceiling) {
		d = maxDelay
	} else {
		d = minDelay * time.Duration(int64(1)<<uint64(attempt-1))
	}
	if d != minDelay {
		d = minDelay + time.Duration(rng.Int64N(int64(d-minDelay)))
	}
	return d
}

// terraformStateChange replays the Terraform plugin SDK's
// resource.StateChangeConf.WaitForStateContext with no Delay, MinTimeout or
// PollInterval set: a refresh at once, then waits that start at 100ms and
// double before each sleep (so 200ms, 400ms, ...), capped at 10s.
func terraformStateChange(provision time.Duration, _ *rand.Rand) (int, time.Duration) {
	t, wait := time.Duration(0), 100*time.Millisecond
	for calls := 1; ; calls++ {
		if t >= provision {
			return calls, t - provision
		}
		wait = min(wait*2, 10*time.Second)
		t += wait
	}
}

// replayStats sums a replay over provisioning times.
type replayStats struct {
	n           int
	calls       int
	delay       time.Duration
	ratios      []float64 // delay / provisioning time, per instance
	maxDelay    time.Duration
	callsPerJob []int
}

func replay(f pollReplay, provisions []time.Duration, seed uint64) replayStats {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	var s replayStats
	for _, p := range provisions {
		calls, delay := f(p, rng)
		s.add(calls, delay, p)
	}
	return s
}

func (s *replayStats) add(calls int, delay, provision time.Duration) {
	s.n++
	s.calls += calls
	s.delay += delay
	s.maxDelay = max(s.maxDelay, delay)
	s.ratios = append(s.ratios, float64(delay)/float64(provision))
	s.callsPerJob = append(s.callsPerJob, calls)
}

func (s replayStats) meanCalls() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.calls) / float64(s.n)
}

func (s replayStats) meanDelay() time.Duration {
	if s.n == 0 {
		return 0
	}
	return s.delay / time.Duration(s.n)
}

func (s replayStats) meanRatio() float64 { return mean(s.ratios) }

func (s replayStats) p95Ratio() float64 { return quantile(s.ratios, 0.95) }
