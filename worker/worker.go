package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
)

// API is the part of the CloudNexus client the worker calls.
type API interface {
	CreateInstance(ctx context.Context, req apiclient.CreateInstanceRequest, idempotencyKey string) (*apiclient.Instance, error)
	GetInstance(ctx context.Context, id string) (*apiclient.Instance, error)
	DeleteInstance(ctx context.Context, id string) error
	FindInstanceByName(ctx context.Context, region, name string) (*apiclient.Instance, error)
	Me(ctx context.Context) (json.RawMessage, error)
	Retry(ctx context.Context, op func(ctx context.Context) error) error
}

// Worker consumes create requests and provisions their instances. Create it
// with New and run it with Run.
type Worker struct {
	cfg    Config
	log    *zap.Logger
	api    API
	js     jetstream.JetStream
	tracer trace.Tracer
	// eventHeaders is how many headers an event has: the map is made once
	// at its final size, and without tracing it is a small map (8 entries
	// fit its single group).
	eventHeaders int

	kv       jetstream.KeyValue
	consumer atomic.Pointer[jetstream.Consumer]
	jobsWG   sync.WaitGroup // jobs in flight, parked ones included
	inFlight atomic.Int64
	steps    chan struct{} // a permit per job step running now; see maxSteps
	runners  *runners      // the goroutines the steps run on
	owners   atomic.Uint64
	leases   leaseKeeper
	polls    pollPlanner
	auth     pauseGate

	running atomic.Bool
	bound   atomic.Bool
}

// New validates cfg and returns a worker; nothing is contacted until Run.
// It returns an error naming each invalid field.
func New(cfg Config) (*Worker, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: withFieldsCore(cfg.Logger).With(zap.String("worker", cfg.ID)), api: cfg.API, js: cfg.JetStream,
		tracer: cfg.TracerProvider.Tracer(tracerName)}
	w.polls = pollPlanner{initial: cfg.PollInitial, max: cfg.PollMax}
	w.eventHeaders = len(eventHeaderNames) + len(cfg.Propagator.Fields())
	w.leases.jobs = make(map[*job]struct{})
	w.steps = make(chan struct{}, min(cfg.Concurrency, maxSteps))
	return w, nil
}

// maxSteps bounds the job steps that run at once (claim and create, one
// poll, finish), as opposed to the jobs in flight (Concurrency), most of
// which are parked waiting for their instance and hold neither a goroutine
// nor a permit. A running step may hold an API connection and a goroutine
// stack grown to 8-16 KB: 10,000 jobs in flight must not mean 10,000 of
// those at once, and a new job starts only when a step may run.
const maxSteps = 256

// Run sets up the streams, consumer and bucket, then consumes until ctx
// ends. It then stops fetching, lets in-flight jobs finish for
// ShutdownTimeout and hands the rest back to the stream, so another replica
// resumes them at once. It returns nil after a clean stop and an error when
// setup fails.
func (w *Worker) Run(ctx context.Context) error {
	cons, kv, err := w.setup(ctx)
	if err != nil {
		return err
	}
	w.kv = kv
	w.runners = newRunners(runnerIdle)
	w.consumer.Store(&cons)
	w.bound.Store(true)
	w.running.Store(true)
	defer w.running.Store(false)
	w.log.Info("worker started", zap.String("consumer", w.cfg.Consumer), zap.String("stream", w.cfg.RequestsStream), zap.Int("concurrency", w.cfg.Concurrency))

	// Jobs outlive ctx by the shutdown grace; cancelJobs ends them.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	var bg sync.WaitGroup
	bg.Go(func() { w.keepLeases(jobCtx) })
	bg.Go(func() { w.probeAuth(ctx) })

	w.fetchLoop(ctx, jobCtx)

	w.log.Info("stopping: waiting for in-flight jobs", zap.Int64("in_flight", w.inFlight.Load()), zap.Duration("grace", w.cfg.ShutdownTimeout))
	done := make(chan struct{})
	go func() { w.jobsWG.Wait(); close(done) }()
	grace := time.NewTimer(w.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		w.log.Warn("shutdown grace over: handing the remaining jobs back", zap.Int64("in_flight", w.inFlight.Load()))
		cancelJobs()
		<-done
	}
	cancelJobs()
	bg.Wait()
	w.runners.stop()
	w.log.Info("worker stopped")
	return nil
}

// Healthy reports whether Run's loop is running.
func (w *Worker) Healthy() bool { return w.running.Load() }

// Ready returns nil when the worker can take jobs, or why it cannot.
func (w *Worker) Ready() error {
	switch {
	case !w.running.Load():
		return errors.New("worker not running")
	case !w.bound.Load():
		return errors.New("consumer " + w.cfg.Consumer + " not bound")
	case w.auth.paused():
		return errors.New("paused: the API rejected the key")
	}
	return nil
}

// Paused reports whether the worker takes no jobs because the API rejected its key.
func (w *Worker) Paused() bool { return w.auth.paused() }

// InFlight returns the number of jobs being worked on now.
func (w *Worker) InFlight() int64 { return w.inFlight.Load() }

// Consumer returns the bound consumer, nil before Run.
func (w *Worker) Consumer() jetstream.Consumer {
	if c := w.consumer.Load(); c != nil {
		return *c
	}
	return nil
}

// fetchLoop pulls messages while ctx lasts, never more than there are free
// slots to start them on at once: a message waiting in a client buffer would
// see its ack wait run out while another replica could have worked it.
func (w *Worker) fetchLoop(ctx, jobCtx context.Context) {
	slots := make(chan struct{}, w.cfg.Concurrency)
	failures := 0
	for ctx.Err() == nil {
		if !w.auth.waitResumed(ctx) {
			return
		}
		if !w.take(ctx, slots) {
			return
		}
		// Ask for no more messages than there are free step permits now;
		// each message takes its permit when it arrives (see fetch).
		n, free := 1, cap(w.steps)-len(w.steps)
	grab:
		for n < min(w.cfg.Concurrency, max(free, 1)) {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break grab
			}
		}

		err := w.fetch(ctx, jobCtx, n, slots)
		if err == nil {
			failures = 0
			continue
		}
		failures++
		w.log.Warn("fetch failed", zap.Error(err), zap.Int("consecutive_failures", failures))
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
			errors.Is(err, jetstream.ErrStreamNotFound) || failures%5 == 0 {
			w.bound.Store(false)
			w.rebind(ctx)
		}
		_ = sleep(ctx, jitter(min(250*time.Millisecond<<min(failures, 5), 5*time.Second)))
	}
}

// take waits for a free slot, and until a step permit is free, which a new
// job needs to start at once; it returns false when ctx ends first. It does
// not keep the permit: a fetch may wait seconds for messages, and parked
// jobs need permits to poll meanwhile.
func (w *Worker) take(ctx context.Context, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	select {
	case w.steps <- struct{}{}:
		<-w.steps
		return true
	case <-ctx.Done():
		<-slots
		return false
	}
}

// fetch pulls up to n messages, holding n slots; each message takes a step
// permit (steps are short: this waits milliseconds at most) and starts a job
// at once, and every slot not used is given back.
func (w *Worker) fetch(ctx, jobCtx context.Context, n int, slots chan struct{}) error {
	used := 0
	defer func() {
		for ; used < n; used++ {
			<-slots
		}
	}()
	cons := w.Consumer()
	fctx, cancel := context.WithTimeout(ctx, w.cfg.FetchMaxWait)
	defer cancel()
	batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return err
	}
	for msg := range batch.Messages() {
		used++
		if ctx.Err() != nil {
			// Stopping: give it straight back.
			_ = msg.Nak()
			<-slots
			continue
		}
		select {
		case w.steps <- struct{}{}:
		case <-ctx.Done():
			_ = msg.Nak()
			<-slots
			continue
		}
		w.inFlight.Add(1)
		w.jobsWG.Add(1)
		w.runners.run(func() { w.handle(jobCtx, msg, func() { w.inFlight.Add(-1); <-slots; w.jobsWG.Done() }) })
	}
	err = batch.Error()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) {
		w.bound.Store(true)
		return nil
	}
	return err
}

// rebind finds (or, when managing streams, recreates) the consumer after it
// was lost, for instance when its stream was recreated or its leader moved.
func (w *Worker) rebind(ctx context.Context) {
	// The KV handle stays valid (it names the bucket's stream); only the
	// consumer is bound again.
	cons, _, err := w.setup(ctx)
	if err != nil {
		w.log.Warn("rebinding the consumer failed", zap.Error(err))
		return
	}
	w.consumer.Store(&cons)
	w.bound.Store(true)
	w.log.Info("consumer bound again")
}

// handle starts the job of one delivery with the step permit the fetch
// took for it. done is called once the message is settled.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, done func()) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without JetStream metadata", zap.Error(err))
		_ = msg.Term()
		<-w.steps
		done()
		return
	}
	if meta.NumDelivered > 1 && w.cfg.Hooks.Redelivered != nil {
		w.cfg.Hooks.Redelivered()
	}
	ctx, span := w.startJobSpan(ctx, msg, meta)
	j := &job{w: w, msg: msg, meta: meta}
	j.logFields.streamSeq, j.logFields.delivery = meta.Sequence.Stream, meta.NumDelivered
	j.log = w.log.With(zap.Inline(&j.logFields))
	w.step(j, span, done, func() outcome { return w.process(ctx, j) })
}

// step runs one step of a job with a step permit, then gives the permit
// back and either parks the job until its next step (actWait) or settles
// its message and ends it.
func (w *Worker) step(j *job, span trace.Span, done func(), run func() outcome) {
	o := func() (o outcome) {
		defer func() {
			if r := recover(); r != nil {
				j.log.Error("job panicked; handing it back", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				o = outcome{action: actNak, delay: w.cfg.AckWait, reason: fmt.Sprint("panic: ", r)}
			}
		}()
		return run()
	}()
	<-w.steps
	if o.action == actWait {
		park(o.ctx, o.delay, func() {
			w.steps <- struct{}{}
			w.runners.run(func() { w.step(j, span, done, o.resume) })
		})
		return
	}
	j.end()
	span.SetAttributes(attrOutcome.String(o.action.String()))
	span.End()
	w.settle(j.msg, o, j.log)
	done()
}

// park runs next after d, or as soon as ctx ends, on a goroutine of its
// own; meanwhile the job holds a timer, not a goroutine.
func park(ctx context.Context, d time.Duration, next func()) {
	fire := sync.OnceFunc(next)
	ready := make(chan struct{})
	var stop func() bool
	t := time.AfterFunc(d, func() {
		<-ready
		stop()
		fire()
	})
	stop = context.AfterFunc(ctx, func() {
		t.Stop()
		fire()
	})
	close(ready)
}

// settle gives the message the one acknowledgement its outcome calls for.
func (w *Worker) settle(msg jetstream.Msg, o outcome, log *zap.Logger) {
	var err error
	switch o.action {
	case actAck:
		err = msg.Ack()
	case actTerm:
		err = msg.TermWithReason(o.reason)
	case actNak:
		log.Debug("handing the message back", zap.Duration("delay", o.delay), zap.String("reason", o.reason))
		if o.delay > 0 {
			err = msg.NakWithDelay(o.delay)
		} else {
			err = msg.Nak()
		}
	case actAbandon:
		return
	}
	if err != nil {
		// The ack wait runs out and the message comes back; its record says what is done.
		log.Warn("could not settle the message", zap.Stringer("action", o.action), zap.Error(err))
	}
}

// nextOwner returns a lease owner unique to one delivery.
func (w *Worker) nextOwner() string {
	return w.cfg.ID + "/" + strconv.FormatUint(w.owners.Add(1), 10)
}

// publish publishes an event and waits for JetStream's acknowledgement.
func (w *Worker) publish(ctx context.Context, ev *jobs.Event, data []byte) error {
	return w.publishMsg(ctx, w.eventMsg(ctx, ev, data))
}

// publishAsync starts publishing an event, so that the caller can write the
// job record while the event is on its way; wait returns once JetStream has
// acknowledged it, or why not. When too many publishes are pending (or the
// connection is down) wait publishes it and waits instead.
func (w *Worker) publishAsync(ctx context.Context, ev *jobs.Event, data []byte) (wait func() error) {
	msg := w.eventMsg(ctx, ev, data)
	f, err := w.js.PublishMsgAsync(msg, jetstream.WithExpectStream(w.cfg.EventsStream))
	if err != nil {
		return func() error { return w.publishMsg(ctx, msg) }
	}
	return func() error {
		t := time.NewTimer(publishTimeout)
		defer t.Stop()
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-t.C:
			return fmt.Errorf("no acknowledgement from JetStream within %s", publishTimeout)
		}
	}
}

// publishTimeout bounds the wait for JetStream to acknowledge an event.
const publishTimeout = 10 * time.Second

func (w *Worker) eventMsg(ctx context.Context, ev *jobs.Event, data []byte) *nats.Msg {
	msg := &nats.Msg{Subject: w.cfg.Subjects.Event(ev.Kind, ev.RequestID), Header: make(nats.Header, w.eventHeaders), Data: data}
	setEventHeaders(msg.Header, ev)
	w.traceEvent(ctx, msg.Header, ev)
	return msg
}

func (w *Worker) publishMsg(ctx context.Context, msg *nats.Msg) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	_, err := w.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(w.cfg.EventsStream))
	return err
}

// eventHeaderNames are the headers setEventHeaders sets.
var eventHeaderNames = [...]string{jetstream.MsgIDHeader, "ce-specversion", "ce-id", "ce-type", "ce-source", "ce-subject", "ce-time", "content-type"}

// setEventHeaders sets the Nats-Msg-Id and the CloudEvents 1.0 binary-mode
// attributes of an event (eventHeaderNames). They depend only on the event,
// so publishing the same event again yields the same message.
func setEventHeaders(h nats.Header, ev *jobs.Event) {
	id := []string{ev.MsgID()}
	h[jetstream.MsgIDHeader] = id
	h["ce-specversion"] = ceSpecVersion
	h["ce-id"] = id
	h["ce-type"] = []string{jobs.CloudEventType(ev.Kind)}
	h["ce-source"] = ceSource
	h["ce-subject"] = []string{ev.RequestID}
	h["ce-time"] = []string{ev.Time.Format(time.RFC3339Nano)}
	h["content-type"] = contentTypeJSON
}

// Header values every event carries, shared by all events' headers: the
// client only reads them, and Header.Set and Add replace or append without
// writing into them.
var (
	ceSpecVersion   = []string{"1.0"}
	ceSource        = []string{jobs.CloudEventSource}
	contentTypeJSON = []string{"application/json"}
)

// leaseKeeper sends progress acks and renews the lease of every job in
// flight, every third of the ack wait, from one goroutine for all jobs.
type leaseKeeper struct {
	mu   sync.Mutex
	jobs map[*job]struct{}
}

func (k *leaseKeeper) add(j *job) {
	j.lastRenew.Store(time.Now().UnixNano())
	k.mu.Lock()
	k.jobs[j] = struct{}{}
	k.mu.Unlock()
}

func (k *leaseKeeper) remove(j *job) {
	k.mu.Lock()
	delete(k.jobs, j)
	k.mu.Unlock()
}

func (k *leaseKeeper) due(before int64) []*job {
	k.mu.Lock()
	defer k.mu.Unlock()
	var due []*job
	for j := range k.jobs {
		if j.lastRenew.Load() <= before {
			due = append(due, j)
		}
	}
	return due
}

// keepLeases renews leases until ctx ends. A job whose renewal finds the
// record changed by someone else has its context cancelled by the lease.
func (w *Worker) keepLeases(ctx context.Context) {
	every := w.cfg.AckWait / 3
	tick := time.NewTicker(every / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var renewing sync.WaitGroup
		slots := make(chan struct{}, renewers)
		for _, j := range w.leases.due(time.Now().Add(-every).UnixNano()) {
			if ctx.Err() != nil {
				break
			}
			j.lastRenew.Store(time.Now().UnixNano())
			if err := j.msg.InProgress(); err != nil {
				j.log.Warn("progress ack failed", zap.Error(err))
			}
			slots <- struct{}{}
			renewing.Go(func() {
				defer func() { <-slots }()
				rctx, cancel := context.WithTimeout(ctx, every)
				defer cancel()
				if err := j.lease.renew(rctx); err != nil && !errors.Is(err, errLeaseLost) {
					j.log.Warn("lease renewal failed", zap.Error(err))
				}
			})
		}
		renewing.Wait()
	}
}

// renewers bounds the lease renewals in flight at once. One after the
// other, a KV round trip each, the renewals of 10,000 jobs take longer than
// the third of an ack wait they must fit in.
const renewers = 16

// pauseGate is closed while the API rejects the worker's key.
type pauseGate struct {
	mu      sync.Mutex
	on      bool
	changed chan struct{}
}

func (g *pauseGate) set(on bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.on == on {
		return false
	}
	g.on = on
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
	return true
}

func (g *pauseGate) state() (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.on, g.changed
}

func (g *pauseGate) paused() bool { on, _ := g.state(); return on }

// waitResumed blocks while paused; it returns false when ctx ends first.
func (g *pauseGate) waitResumed(ctx context.Context) bool {
	for {
		on, changed := g.state()
		if !on {
			return ctx.Err() == nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// pauseForAuth stops taking jobs after the API answered 401.
func (w *Worker) pauseForAuth() {
	if w.auth.set(true) {
		w.log.Error("the API rejected the key: no new jobs until it is accepted again; in-flight jobs are handed back",
			zap.Duration("probe_every", w.cfg.AuthProbeInterval))
	}
}

// probeAuth checks the key every AuthProbeInterval while paused, and lifts
// the pause once the API accepts it.
func (w *Worker) probeAuth(ctx context.Context) {
	for {
		on, changed := w.auth.state()
		if !on {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		if sleep(ctx, w.cfg.AuthProbeInterval) != nil {
			return
		}
		_, err := w.api.Me(ctx)
		switch {
		case err == nil:
			if w.auth.set(false) {
				w.log.Info("the API accepts the key again: taking jobs")
			}
		case errors.Is(err, apiclient.ErrUnauthorized):
			w.log.Warn("the API still rejects the key")
		default:
			w.log.Warn("probing the API failed", zap.Error(err))
		}
	}
}
