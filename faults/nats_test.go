package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// testNATSRestart shuts the NATS server down while jobs are in flight and
// starts it again on the same port and store directory. The worker process
// must ride it out: reconnect and keep consuming, without a restart.
func testNATSRestart(t *testing.T, s *suite) {
	rng := rand.New(rand.NewPCG(s.seed, 0x7e57a7))
	e := newEnv(t, s, options{sim: cnsim.Config{Seed: s.seed, ProvisionTime: spreadProvisionTime(s.seed, 200*time.Millisecond, 2*time.Second)}})
	w := e.startReplica("w")
	e.submit(requests("restart", 1, 80)...)
	up := 300*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second)))
	time.Sleep(up)
	e.nodes[0].stop()
	down := 500*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second)))
	time.Sleep(down)
	e.nodes[0].start(t)
	e.submit(requests("restart", 81, 20)...)

	e.verify(caseReport{
		name:     "NATS server restarted mid-run",
		injected: fmt.Sprintf("the NATS server shut down %s into a run of 80 requests, started again %s later on the same port and store directory; 20 more requests after", up.Round(time.Millisecond), down.Round(time.Millisecond)),
		check: func([]storedEvent) (notes, problems []string) {
			if w.runs != 1 {
				problems = append(problems, "the worker process was restarted")
			}
			reconnects := w.countLog("NATS reconnected")
			if reconnects == 0 {
				problems = append(problems, "the worker never logged a reconnect")
			}
			notes = append(notes, fmt.Sprintf("one worker process throughout; %d reconnects logged", reconnects))
			return notes, problems
		},
	})
}

// testClusterLeaderLoss runs the worker on a three-node JetStream cluster
// with R3 streams and bucket, puts the consumer's leader on the requests
// stream leader's node, and shuts that node down mid-run.
func testClusterLeaderLoss(t *testing.T, s *suite) {
	rng := rand.New(rand.NewPCG(s.seed, 0xc1a5))
	e := newEnv(t, s, options{nodes: 3, env: []string{"PROVISIONER_STREAM_REPLICAS=3"},
		sim: cnsim.Config{Seed: s.seed, ProvisionTime: spreadProvisionTime(s.seed, 200*time.Millisecond, 2*time.Second)}})
	w := e.startReplica("w")
	leader := e.streamLeader(requestsStream)
	e.moveConsumerLeader(leader)
	e.submit(requests("cluster", 1, 60)...)
	time.Sleep(300*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second))))
	led := "the requests stream and the consumer"
	if got := e.consumerLeader(); got != leader {
		led = "the requests stream (the consumer's leader had moved to " + got + ")"
	}
	e.node(leader).stop()
	e.submit(requests("cluster", 61, 20)...)
	newStream, newConsumer := e.streamLeader(requestsStream), e.consumerLeader()

	e.verify(caseReport{
		name:     "three-node cluster, leader node shut down",
		injected: fmt.Sprintf("R3 streams and bucket on three nodes; node %s, leading %s, shut down during a run of 60 requests; 20 more after", leader, led),
		check: func([]storedEvent) (notes, problems []string) {
			for _, name := range []string{requestsStream, eventsStream, "KV_" + jobsBucket} {
				if r := e.streamReplicas(name); r != 3 {
					problems = append(problems, fmt.Sprintf("stream %s has %d replicas, want 3", name, r))
				}
			}
			if w.runs != 1 {
				problems = append(problems, "the worker process was restarted")
			}
			notes = append(notes, fmt.Sprintf("new leaders: stream %s, consumer %s; one worker process throughout", newStream, newConsumer))
			return notes, problems
		},
	})
}

// streamLeader waits until the stream has a leader and returns its server name.
func (e *env) streamLeader(name string) string {
	e.t.Helper()
	return e.waitLeader("stream "+name, func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, err
		}
		return info.Cluster, nil
	})
}

// consumerLeader waits until the consumer has a leader and returns its server name.
func (e *env) consumerLeader() string {
	e.t.Helper()
	return e.waitLeader("consumer", func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		c, err := e.js.Consumer(ctx, requestsStream, consumerName)
		if err != nil {
			return nil, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil, err
		}
		return info.Cluster, nil
	})
}

func (e *env) waitLeader(what string, info func(context.Context) (*jetstream.ClusterInfo, error)) string {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ci, err := info(ctx)
		cancel()
		if err == nil && ci != nil && ci.Leader != "" {
			return ci.Leader
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s has no leader: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// moveConsumerLeader asks the consumer's leader to step down in favour of
// server, and waits until it has.
func (e *env) moveConsumerLeader(server string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for e.consumerLeader() != server {
		if time.Now().After(deadline) {
			e.t.Fatalf("consumer leader did not move to %s", server)
		}
		req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": server}})
		subject := fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", requestsStream, consumerName)
		if _, err := e.nc.Request(subject, req, 5*time.Second); err != nil {
			e.t.Logf("consumer leader stepdown: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// streamReplicas returns the configured replicas of a stream.
func (e *env) streamReplicas(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.Config.Replicas
}
