package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// step is one broker operation of a job.
type step int

const (
	stepKVGet        step = iota // KV get, waits for the answer
	stepKVCreate                 // KV create, waits
	stepKVUpdate                 // KV compare-and-set update, waits
	stepPublish                  // publish to the events stream, waits for the ack
	stepPublishAsync             // publish to the events stream; stepAwait waits for the ack
	stepAwait                    // wait for the ack of the last stepPublishAsync
	stepAck                      // ack the request message (no reply awaited, as the worker does)
)

var stepNames = [...]string{"KV get", "KV create", "KV update", "publish", "publish (async)", "await publish ack", "ack"}

func (s step) String() string { return stepNames[s] }

// workerRecipe is the sequence of broker operations the worker makes for one
// request whose create answer is already running (see worker/job.go):
// claim (KV create), record the instance while the created event's publish
// is in flight, then its ack; record the terminal event (KV update), publish
// it, ack the message. Keep it in step with the worker.
var workerRecipe = []step{stepKVCreate, stepPublishAsync, stepKVUpdate, stepAwait, stepKVUpdate, stepPublish, stepAck}

// roundTrips is how many times a job of recipe waits for the broker.
func roundTrips(recipe []step) int {
	n := 0
	for _, s := range recipe {
		switch s {
		case stepKVGet, stepKVCreate, stepKVUpdate, stepPublish, stepAwait:
			n++
		}
	}
	return n
}

func countSteps(recipe []step, s step) int {
	n := 0
	for _, r := range recipe {
		if r == s {
			n++
		}
	}
	return n
}

func describeRecipe(recipe []step) string {
	parts := make([]string, len(recipe))
	for i, s := range recipe {
		parts[i] = s.String()
	}
	return strings.Join(parts, ", ")
}

// payloads are a job's records and events at the sizes the worker writes,
// so the ceiling moves the same bytes.
type payloads struct {
	claim, instance, done []byte // the three job records
	created, completed    []byte // the two events
}

func makePayloads(r jobs.Request) payloads {
	now := time.Now().UTC().Truncate(time.Millisecond)
	inst := &apiclient.Instance{ID: "inst_0123abcd", Name: r.Name, Status: apiclient.StatusRunning, Region: r.Region, Plan: r.Plan, Image: r.Image, IPv4: "10.0.1.2", CreatedAt: &now}
	created := jobs.NewEvent(jobs.KindCreated, r.RequestID, r.Metadata, now)
	created.Instance = inst
	completed := jobs.NewEvent(jobs.KindCompleted, r.RequestID, r.Metadata, now)
	completed.Instance, completed.DurationMS, completed.APICalls = inst, 3, 1
	var p payloads
	p.created, _ = json.Marshal(created)
	p.completed, _ = json.Marshal(completed)
	rec := worker.Record{Fingerprint: r.Fingerprint(), Owner: "bench-host-12345/1", LeaseUntil: now.Add(30 * time.Second),
		StreamSequence: 1, StartedAt: now, CreateStartedAt: now}
	p.claim, _ = json.Marshal(&rec)
	rec.InstanceID, rec.InstanceCreatedAt, rec.Created, rec.APICalls = inst.ID, now, p.created, 1
	p.instance, _ = json.Marshal(&rec)
	rec.Owner, rec.LeaseUntil, rec.Terminal = "", time.Time{}, p.completed
	p.done, _ = json.Marshal(&rec)
	return p
}

// eventMsg builds an event message with the headers the worker sets.
func eventMsg(kind jobs.Kind, requestID string, data []byte) *nats.Msg {
	var subj jobs.Subjects
	ev := jobs.Event{RequestID: requestID, Kind: kind}
	msg := nats.NewMsg(subj.Event(kind, requestID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, ev.MsgID())
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-id", ev.MsgID())
	msg.Header.Set("ce-type", jobs.CloudEventType(kind))
	msg.Header.Set("ce-source", jobs.CloudEventSource)
	msg.Header.Set("ce-subject", requestID)
	msg.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	msg.Header.Set("content-type", "application/json")
	return msg
}

// ceilingResult is the broker's rate for a recipe.
type ceilingResult struct {
	jobs    int
	elapsed time.Duration
	cpu     time.Duration // the whole process's, broker included
	heap    heapStats     // the whole process's
}

func (r ceilingResult) rate() float64 { return float64(r.jobs) / r.elapsed.Seconds() }

func (r ceilingResult) cpuPerJob() float64 { return float64(r.cpu.Microseconds()) / float64(r.jobs) }

// measureCeiling runs recipe for every request with a minimal loop: the
// worker's own fetch discipline (pull only as many messages as there are
// free slots, a goroutine per message) and nothing else, on a fresh broker
// with the worker's streams, consumer and bucket. With a profile path it
// writes a CPU profile of the loop there.
func measureCeiling(ctx context.Context, reqs []jobs.Request, concurrency int, recipe []step, profile string) (ceilingResult, error) {
	b, err := startBroker()
	if err != nil {
		return ceilingResult{}, err
	}
	defer b.close()
	nc, js, err := b.connect("provbench-ceiling")
	if err != nil {
		return ceilingResult{}, err
	}
	defer nc.Close()

	wc := worker.Config{RequestsStream: "PROVISION_REQUESTS", EventsStream: "PROVISION_EVENTS", Consumer: "provisioner", KVBucket: "provision_jobs",
		Replicas: 1, DuplicateWindow: 2 * time.Minute, EventsMaxAge: 7 * 24 * time.Hour, AckWait: 30 * time.Second}
	if err := ensureStreams(ctx, js); err != nil {
		return ceilingResult{}, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, wc.KVConfig())
	if err != nil {
		return ceilingResult{}, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, wc.RequestsStream, wc.ConsumerConfig())
	if err != nil {
		return ceilingResult{}, err
	}
	if err := publishAll(ctx, js, reqs); err != nil {
		return ceilingResult{}, err
	}
	p := makePayloads(reqs[0])

	var done atomic.Int64
	var lastDone atomic.Int64 // unix nanos of the last job's end
	fetched := 0
	var firstErr atomic.Pointer[error]
	fail := func(err error) { firstErr.CompareAndSwap(nil, &err) }
	var wg sync.WaitGroup
	slots := make(chan struct{}, concurrency)
	stopProfile := startCPUProfile(profile)
	start, cpu0, heap0 := time.Now(), selfCPU(), readHeap()
	for fetched < len(reqs) && firstErr.Load() == nil && ctx.Err() == nil {
		slots <- struct{}{}
		n := 1
	grab:
		for n < concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break grab
			}
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			fail(err)
			break
		}
		used := 0
		for msg := range batch.Messages() {
			used++
			fetched++
			wg.Go(func() {
				defer func() { <-slots }()
				if err := runRecipe(ctx, js, kv, msg, recipe, p); err != nil {
					fail(err)
					return
				}
				if done.Add(1) == int64(len(reqs)) {
					lastDone.Store(time.Now().UnixNano())
				}
			})
		}
		for ; used < n; used++ {
			<-slots
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			fail(err)
		}
	}
	// The last pull request may wait out its expiry for messages that are
	// not there; the rate is measured to the end of the last job.
	wg.Wait()
	elapsed, cpu, heap := time.Unix(0, lastDone.Load()).Sub(start), selfCPU()-cpu0, readHeap().since(heap0)
	if stopProfile != nil {
		stopProfile()
	}
	if firstErr.Load() == nil && done.Load() != int64(len(reqs)) {
		return ceilingResult{}, fmt.Errorf("ceiling loop: %d of %d jobs done", done.Load(), len(reqs))
	}
	if err := firstErr.Load(); err != nil {
		return ceilingResult{}, fmt.Errorf("ceiling loop: %w", *err)
	}
	if err := ctx.Err(); err != nil {
		return ceilingResult{}, err
	}
	return ceilingResult{jobs: len(reqs), elapsed: elapsed, cpu: cpu, heap: heap}, nil
}

func runRecipe(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, msg jetstream.Msg, recipe []step, p payloads) error {
	var req struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return err
	}
	key := req.RequestID
	var rev uint64
	var fut jetstream.PubAckFuture
	// The last records of a job are the instance and the terminal one; a
	// recipe with more updates writes the claim-sized record first.
	updates := [][]byte{p.claim, p.instance, p.done}
	if n := countSteps(recipe, stepKVUpdate); n < len(updates) {
		updates = updates[len(updates)-n:]
	}
	events := []struct {
		kind jobs.Kind
		data []byte
	}{{jobs.KindCreated, p.created}, {jobs.KindCompleted, p.completed}}
	nextEvent := func() *nats.Msg {
		e := events[0]
		if len(events) > 1 {
			events = events[1:]
		}
		return eventMsg(e.kind, key, e.data)
	}
	for _, s := range recipe {
		var err error
		switch s {
		case stepKVGet:
			_, err = kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				err = nil
			}
		case stepKVCreate:
			rev, err = kv.Create(ctx, key, p.claim)
		case stepKVUpdate:
			v := updates[0]
			if len(updates) > 1 {
				updates = updates[1:]
			}
			rev, err = kv.Update(ctx, key, v, rev)
		case stepPublish:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = js.PublishMsg(pctx, nextEvent(), jetstream.WithExpectStream("PROVISION_EVENTS"))
			cancel()
		case stepPublishAsync:
			fut, err = js.PublishMsgAsync(nextEvent(), jetstream.WithExpectStream("PROVISION_EVENTS"))
		case stepAwait:
			select {
			case <-fut.Ok():
			case err = <-fut.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		case stepAck:
			err = msg.Ack()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
