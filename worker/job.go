package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
)

// action is what a delivery of a request message ends with. A job step
// returns an outcome instead of acking, so the one ack, nak or term a message
// gets is decided in one place (settle).
type action int

const (
	// actAck: a terminal event (or the stored one again) was published.
	actAck action = iota
	// actTerm: the message can never succeed; a rejected event was published.
	actTerm
	// actNak: hand the message back to the stream after delay; the lease, if
	// any, was released.
	actNak
	// actAbandon: another delivery took the job over; this one touches nothing.
	actAbandon
	// actWait: not an end but a pause: the job waits delay for its instance,
	// holding no goroutine, then goes on with resume.
	actWait
)

type outcome struct {
	action action
	delay  time.Duration
	reason string
	// For actWait: what to do after the wait, and the job's context, whose
	// end (shutdown, a lost lease) cuts the wait short.
	resume func() outcome
	ctx    context.Context
}

func (a action) String() string {
	return [...]string{"ack", "term", "nak", "abandon", "wait"}[a]
}

// job is one delivery of one request message.
type job struct {
	w    *Worker
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	req  jobs.Request
	// log is the job's logger, made once when the job starts; its lines
	// carry what logFields knows about the job at the time of each line.
	log       *zap.Logger
	logFields jobLogFields
	lease     *lease
	// newRecord is true when this delivery's claim created the job record.
	newRecord bool
	// calls counts this delivery's API calls; baseCalls those of earlier ones.
	calls     atomic.Int64
	baseCalls int64
	// lastRenew is when the lease keeper last extended this job (unix nanos).
	lastRenew atomic.Int64
	// cancel ends the job's context; end calls it.
	cancel context.CancelCauseFunc
}

// end lets go of what the job held while it ran: its place in the lease
// keeper and its context. It is called once, after the last step.
func (j *job) end() {
	j.w.leases.remove(j)
	if j.cancel != nil {
		j.cancel(nil)
	}
}

// process takes one delivery from decoding to its outcome:
// decode -> claim -> create (or adopt, or resume) -> publish created ->
// poll until running -> record and publish the terminal event. While it
// waits for the instance it returns actWait; the job's context and lease
// live on until end.
func (w *Worker) process(ctx context.Context, j *job) outcome {
	msg, meta := j.msg, j.meta
	req, decodeErr := jobs.DecodeRequest(msg.Data())
	if jobs.IsReject(decodeErr) {
		return j.reject(ctx, "", nil, jobs.CodeMalformedMessage, decodeErr.Error())
	}
	j.req = req
	j.logFields.setRequestID(req.RequestID)
	traceRequest(ctx, req.RequestID)

	ctx, cancel := context.WithCancelCause(ctx)
	j.cancel = cancel
	l, rec, res, held, err := claim(ctx, w.kv, req.RequestID, w.nextOwner(), req.Fingerprint(), meta.Sequence.Stream, w.cfg.AckWait, decodeErr == nil, w.cfg.Now)
	if err != nil {
		return j.handBack(ctx, w.cfg.AckWait/3, HandBackNATS, "claim job: "+err.Error())
	}
	switch res {
	case claimConflict:
		return j.reject(ctx, req.RequestID, req.Metadata, jobs.CodeIdempotencyConflict,
			"request_id "+req.RequestID+" was already used with a different body; the original request is unaffected")
	case claimDone:
		j.log.Info("request already done: publishing its terminal event again", zap.String("instance_id", rec.InstanceID))
		if err := j.publishStored(ctx, rec.Terminal); err != nil {
			return outcome{action: actNak, delay: w.cfg.AckWait / 3, reason: err.Error()}
		}
		return outcome{action: actAck}
	case claimHeld:
		return j.handBack(ctx, held+jitter(time.Second), HandBackLeaseHeld, "another delivery holds the job")
	}
	l.lost = cancel
	j.lease, j.newRecord = l, res == claimedNew
	j.baseCalls = rec.APICalls
	if rec.InstanceID != "" {
		j.logFields.setInstanceID(rec.InstanceID)
	}
	w.leases.add(j)
	ctx = apiclient.CountCalls(ctx, &j.calls)

	var verr *jobs.ValidationError
	if errors.As(decodeErr, &verr) {
		j.log.Info("request is invalid", zap.Error(verr))
		return j.fail(ctx, &jobs.EventError{Code: jobs.CodeInvalidRequest, Message: verr.Error(), Details: jobs.FieldErrorsJSON(verr.Fields)}, "")
	}

	inst, fresh, o, ok := j.ensureInstance(ctx, rec)
	if !ok {
		return o
	}
	return j.waitRunning(ctx, inst, fresh)
}

// ensureInstance returns the job's instance: the one recorded by an earlier
// delivery, one found by name after a create whose outcome is unknown, or a
// new one. fresh is true when the instance came from the API just now.
func (j *job) ensureInstance(ctx context.Context, rec Record) (inst *apiclient.Instance, fresh bool, o outcome, ok bool) {
	w := j.w
	if rec.InstanceID != "" {
		// Resumed after the create. The created event may not have gone out;
		// publishing it again is dropped by JetStream within the duplicate window.
		if err := j.publishStored(ctx, rec.Created); err != nil {
			return nil, false, j.handBack(ctx, w.cfg.AckWait/3, HandBackNATS, err.Error()), false
		}
		return &apiclient.Instance{ID: rec.InstanceID}, false, outcome{}, true
	}

	// From the moment the create is recorded as started until the instance id
	// is recorded, a create may have happened that nobody heard of: every
	// later attempt, in this delivery or another, looks for it first. A
	// record this delivery just created says so already, and nobody has
	// created anything for it yet.
	ambiguous := !rec.CreateStartedAt.IsZero() && !j.newRecord
	switch {
	case ambiguous:
		j.log.Info("an earlier delivery may have created the instance: looking for it before creating")
	case rec.CreateStartedAt.IsZero():
		if err := j.lease.update(ctx, func(r *Record) { r.CreateStartedAt = w.cfg.Now() }); err != nil {
			return nil, false, j.storeFailed(ctx, err), false
		}
	}
	since := j.lease.get().CreateStartedAt

	body := apiclient.CreateInstanceRequest{Name: j.req.Name, Plan: j.req.Plan, Region: j.req.Region, Image: j.req.Image, SSHKeys: j.req.SSHKeys}
	adopted := false
	// beforeSend runs right before a create is sent, after any wait behind
	// the overload gate (or in a frozen process), which may outlast the
	// lease: the create goes out only if the lease is still ours, and, when
	// an earlier create may have happened, only if no instance of that name
	// turned up. Looking there rather than before the gate keeps a storm
	// from costing one list walk per waiting job per Retry-After.
	beforeSend := func(ctx context.Context) error {
		if err := j.lease.confirm(ctx); err != nil || !ambiguous {
			return err
		}
		found, err := w.api.FindInstanceByName(apiclient.WithSendCheck(ctx, nil), j.req.Region, j.req.Name)
		if err != nil {
			return err
		}
		if found != nil && adoptable(found, since) {
			inst, adopted = found, true
			return errAdopted
		}
		return nil
	}
	err := w.api.Retry(ctx, func(ctx context.Context) error {
		created, err := w.api.CreateInstance(apiclient.WithSendCheck(ctx, beforeSend), body, j.req.RequestID)
		if adopted {
			return nil
		}
		if err == nil && created.ID == "" {
			err = &apiclient.Error{Method: http.MethodPost, Path: "/instances", StatusCode: http.StatusBadGateway, Message: "created instance has no id"}
		}
		if err != nil {
			if apiclient.Retryable(err) {
				ambiguous = true
			}
			return err
		}
		inst = created
		return nil
	})
	if err != nil {
		return nil, false, j.apiFailed(ctx, err, ""), false
	}

	j.logFields.setInstanceID(inst.ID)
	if adopted {
		j.log.Info("adopted the instance an earlier create made", zap.String("status", inst.Status))
	} else {
		j.log.Info("instance created", zap.String("status", inst.Status))
	}
	createdAt := w.cfg.Now()
	if adopted {
		createdAt = since
	}
	ev := jobs.NewEvent(jobs.KindCreated, j.req.RequestID, j.req.Metadata, createdAt)
	ev.Instance = inst
	data, _ := encodeEvent(ev) // no error details to fail on
	// The created event travels while the record is written: the job goes on
	// only once both are done, and neither needs the other. If the write
	// fails, the delivery that resumes the job finds the instance by name and
	// publishes created again, which JetStream drops within the duplicate
	// window; created is not terminal.
	createdAcked := w.publishAsync(ctx, ev, data)
	if err := j.lease.update(ctx, func(r *Record) {
		r.InstanceID, r.InstanceCreatedAt, r.Created = inst.ID, createdAt, data
		r.APICalls = j.apiCalls()
	}); err != nil {
		return nil, false, j.storeFailed(ctx, err), false
	}
	if err := createdAcked(); err != nil {
		return nil, false, j.handBack(ctx, w.cfg.AckWait/3, HandBackNATS, "publish created event: "+err.Error()), false
	}
	return inst, true, outcome{}, true
}

// errAdopted stops a create unsent: an instance an earlier create made was
// found and adopted instead.
var errAdopted = errors.New("instance found by name and adopted")

// adoptCreatedSkew allows for the API's clock being behind ours when an
// instance found by name is checked against the job's first create attempt.
const adoptCreatedSkew = 10 * time.Minute

// adoptable reports whether an instance found by name can be this job's: one
// created long before the job's first create attempt belongs to someone else.
func adoptable(inst *apiclient.Instance, since time.Time) bool {
	if inst.ID == "" {
		return false
	}
	return inst.CreatedAt == nil || !inst.CreatedAt.Before(since.Add(-adoptCreatedSkew))
}

// waitRunning polls the instance until it is running, fails, disappears or
// the provision timeout passes. A fresh instance is first looked at after
// the poll schedule's first wait; a resumed one at once. Between two polls
// the job is parked (actWait): it holds a timer, not a goroutine and its
// stack, so that thousands of jobs wait at the cost of a little memory each.
func (j *job) waitRunning(ctx context.Context, inst *apiclient.Instance, fresh bool) outcome {
	w := j.w
	rec := j.lease.get()
	p := &poller{j: j, rec: rec, deadline: rec.InstanceCreatedAt.Add(w.cfg.ProvisionTimeout),
		sched: w.polls.schedule(j.req.Plan, j.req.Region, rec.InstanceCreatedAt, !fresh)}
	if !fresh {
		inst = nil
	}
	return p.check(ctx, inst)
}

// poller is what waitRunning keeps from one poll to the next.
type poller struct {
	j          *job
	rec        Record
	deadline   time.Time
	sched      *pollSchedule
	lastStatus string
}

// check looks at the instance as last seen (nil: not seen yet, or not listed
// yet) and ends the job, or parks it until the next poll.
func (p *poller) check(ctx context.Context, inst *apiclient.Instance) outcome {
	j, w, rec := p.j, p.j.w, p.rec
	if inst != nil {
		p.lastStatus = inst.Status
		switch {
		case inst.Status == apiclient.StatusRunning:
			return j.complete(ctx, inst, p.sched)
		case apiclient.FailedStatus(inst.Status):
			j.log.Info("instance failed", zap.String("status", inst.Status))
			return j.fail(ctx, &jobs.EventError{Code: jobs.CodeInstanceFailed,
				Message: fmt.Sprintf("instance %s reached status %q", rec.InstanceID, inst.Status)}, rec.InstanceID)
		}
	}
	now := w.cfg.Now()
	if !now.Before(p.deadline) {
		j.log.Info("instance not running in time", zap.String("status", p.lastStatus))
		return j.fail(ctx, &jobs.EventError{Code: jobs.CodeProvisionTimeout,
			Message: fmt.Sprintf("instance %s was not running %s after it was created (last status %q)", rec.InstanceID, w.cfg.ProvisionTimeout, p.lastStatus)}, rec.InstanceID)
	}
	wait := p.sched.next(now)
	return outcome{action: actWait, delay: min(wait, p.deadline.Sub(now)), ctx: ctx, resume: func() outcome { return p.poll(ctx) }}
}

// poll looks at the instance once the wait is over.
func (p *poller) poll(ctx context.Context) outcome {
	j, w, rec := p.j, p.j.w, p.rec
	if ctx.Err() != nil {
		return j.interrupted(ctx)
	}
	sent := w.cfg.Now()
	if p.sched.skip(sent) {
		return p.check(ctx, nil) // an older instance like it was pending a moment ago
	}
	got, err := w.api.GetInstance(ctx, rec.InstanceID)
	p.sched.polled(sent, err == nil && got.Status == apiclient.StatusRunning)
	switch {
	case err == nil:
		return p.check(ctx, got)
	case isNotFound(err) && w.cfg.Now().Sub(rec.InstanceCreatedAt) < w.cfg.NotFoundGrace:
		return p.check(ctx, nil) // the API may not list a new instance at once
	case isNotFound(err):
		return j.fail(ctx, apiEventError(jobs.CodeInstanceNotFound, err), "")
	default:
		return j.apiFailed(ctx, err, rec.InstanceID)
	}
}

// complete records and publishes the completed event, and teaches the poll
// planner what sched found.
func (j *job) complete(ctx context.Context, inst *apiclient.Instance, sched *pollSchedule) outcome {
	w := j.w
	rec := j.lease.get()
	now := w.cfg.Now()
	if d, ok := sched.estimate(); ok {
		w.polls.observe(j.req.Plan, j.req.Region, d)
	}
	if w.cfg.Hooks.InstanceRunning != nil {
		w.cfg.Hooks.InstanceRunning(now.Sub(rec.InstanceCreatedAt))
	}
	ev := jobs.NewEvent(jobs.KindCompleted, j.req.RequestID, j.req.Metadata, now)
	ev.Instance = inst
	ev.DurationMS = now.Sub(rec.StartedAt).Milliseconds()
	ev.APICalls = int(j.apiCalls())
	return j.finish(ctx, ev)
}

// fail publishes a failed event, deleting instanceID first when configured.
func (j *job) fail(ctx context.Context, evErr *jobs.EventError, instanceID string) outcome {
	w := j.w
	deleted := false
	if instanceID != "" && w.cfg.DeleteOnFailure {
		// The delete goes out only while the lease is ours, confirmed right
		// before it is sent: a replica frozen past its lease could otherwise
		// delete an instance that the delivery which took the job over has
		// seen running since.
		var unconfirmed error
		confirm := func(ctx context.Context) error {
			unconfirmed = j.lease.confirm(ctx)
			return unconfirmed
		}
		switch err := w.api.DeleteInstance(apiclient.WithSendCheck(ctx, confirm), instanceID); {
		case err == nil:
			deleted = true
			j.log.Info("deleted the failed instance")
		case unconfirmed != nil:
			// Not sent: another delivery has the job, or the record could
			// not be written and a later delivery decides again.
			return j.storeFailed(ctx, unconfirmed)
		case ctx.Err() != nil:
			return j.interrupted(ctx)
		case errors.Is(err, apiclient.ErrUnauthorized):
			return j.apiFailed(ctx, err, instanceID)
		default:
			j.log.Error("could not delete the failed instance; it is left for an operator", zap.Error(err))
		}
	}
	// Made after the delete, so that its time is when the job ended.
	ev := jobs.NewEvent(jobs.KindFailed, j.req.RequestID, j.req.Metadata, w.cfg.Now())
	ev.Error = evErr
	if instanceID != "" {
		ev.InstanceID, ev.InstanceDeleted = instanceID, &deleted
	}
	return j.finish(ctx, ev)
}

// finish records the terminal event, then publishes it. Recording first
// makes the terminal event fixed: whoever publishes it later (a redelivery,
// a duplicate request) publishes these same bytes.
func (j *job) finish(ctx context.Context, ev *jobs.Event) outcome {
	w := j.w
	data, err := encodeEvent(ev)
	if err != nil {
		return j.handBack(ctx, w.cfg.AckWait, HandBackOther, "encode event: "+err.Error())
	}
	if err := j.lease.release(ctx, func(r *Record) {
		r.Terminal = data
		r.APICalls = j.apiCalls()
	}); err != nil {
		return j.storeFailed(ctx, err)
	}
	if err := w.publish(ctx, ev, data); err != nil {
		// The event is recorded: the redelivery publishes it.
		return outcome{action: actNak, delay: w.cfg.AckWait / 3, reason: "publish terminal event: " + err.Error()}
	}
	if w.cfg.Hooks.JobFinished != nil {
		code := ""
		if ev.Error != nil {
			code = ev.Error.Code
		}
		w.cfg.Hooks.JobFinished(ev.Kind, code, w.cfg.Now().Sub(j.lease.get().StartedAt))
	}
	j.log.Info("request finished", zap.String("kind", string(ev.Kind)))
	return outcome{action: actAck}
}

// reject publishes a rejected event about a message that cannot be worked.
func (j *job) reject(ctx context.Context, requestID string, metadata map[string]string, code, message string) outcome {
	w := j.w
	j.log.Warn("rejecting message", zap.String("code", code), zap.String("reason", message))
	ev := jobs.NewEvent(jobs.KindRejected, requestID, metadata, w.cfg.Now())
	ev.Error = &jobs.EventError{Code: code, Message: message}
	ev.StreamSequence = j.meta.Sequence.Stream
	data, _ := encodeEvent(ev) // no error details to fail on
	if err := w.publish(ctx, ev, data); err != nil {
		return outcome{action: actNak, delay: w.cfg.AckWait / 3, reason: "publish rejected event: " + err.Error()}
	}
	if w.cfg.Hooks.JobFinished != nil {
		w.cfg.Hooks.JobFinished(jobs.KindRejected, code, 0)
	}
	return outcome{action: actTerm, reason: code + ": " + message}
}

// publishStored publishes an event stored in the job record, byte for byte.
func (j *job) publishStored(ctx context.Context, data []byte) error {
	var ev jobs.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("decode stored event: %w", err)
	}
	if err := j.w.publish(ctx, &ev, data); err != nil {
		return fmt.Errorf("publish %s event: %w", ev.Kind, err)
	}
	return nil
}

// apiFailed turns an API error into the job's outcome: a pause for a bad key,
// a retry later for a temporary failure, a failed event for a final one.
func (j *job) apiFailed(ctx context.Context, err error, instanceID string) outcome {
	w := j.w
	var apiErr *apiclient.Error
	switch {
	case ctx.Err() != nil:
		return j.interrupted(ctx)
	case errors.Is(err, apiclient.ErrUnauthorized):
		w.pauseForAuth()
		return j.handBack(ctx, w.cfg.AuthProbeInterval, HandBackAuth, "the API rejected the key")
	case apiclient.Retryable(err) || !errors.As(err, &apiErr):
		return j.retryLater(ctx, err, instanceID)
	}
	j.log.Info("the API refused the request", zap.Int("http_status", apiErr.StatusCode), zap.String("code", apiErr.Code))
	return j.fail(ctx, apiEventError("", err), instanceID)
}

// retryLater hands the job back after a retryable failure, or fails it with
// RETRIES_EXHAUSTED when this was its last allowed attempt.
func (j *job) retryLater(ctx context.Context, cause error, instanceID string) outcome {
	w := j.w
	attempts := j.lease.get().Attempts + 1
	if attempts >= w.cfg.MaxDeliver {
		j.log.Warn("giving up after the last attempt", zap.Int("attempts", attempts), zap.Error(cause))
		return j.fail(ctx, &jobs.EventError{Code: jobs.CodeRetriesExhausted,
			Message: fmt.Sprintf("gave up after %d attempts: %v", attempts, cause)}, instanceID)
	}
	delay := retryDelay(attempts, w.cfg.AckWait)
	j.log.Warn("attempt failed; retrying later", zap.Int("attempts", attempts), zap.Duration("delay", delay), zap.Error(cause))
	if err := j.lease.release(ctx, func(r *Record) {
		r.Attempts, r.LastError, r.APICalls = attempts, cause.Error(), j.apiCalls()
	}); err != nil {
		return j.storeFailed(ctx, err)
	}
	return outcome{action: actNak, delay: delay, reason: cause.Error()}
}

// retryDelay is the nak delay after a failed attempt: exponential from 2s,
// capped at the ack wait times four, with jitter.
func retryDelay(attempts int, ackWait time.Duration) time.Duration {
	d := 2 * time.Second << min(attempts-1, 10)
	return jitter(min(d, 4*ackWait))
}

// interrupted is the outcome of a job whose context ended: either another
// delivery took it over, or the worker is shutting down and hands it back.
func (j *job) interrupted(ctx context.Context) outcome {
	if errors.Is(context.Cause(ctx), errLeaseLost) {
		j.log.Warn("lease lost: another delivery continues the job")
		return outcome{action: actAbandon, reason: "lease lost"}
	}
	return j.handBack(ctx, 0, HandBackShutdown, "shutting down")
}

// storeFailed is the outcome of a failed write of the job record.
func (j *job) storeFailed(ctx context.Context, err error) outcome {
	if errors.Is(err, errLeaseLost) {
		return j.interrupted(ctx)
	}
	return j.handBack(ctx, j.w.cfg.AckWait/3, HandBackNATS, err.Error())
}

// handBack releases the lease (when held) so the next delivery can start at
// once, and returns a nak after delay. It works on a context of its own so
// that it also runs when ctx ended for shutdown.
func (j *job) handBack(ctx context.Context, delay time.Duration, why HandBackReason, reason string) outcome {
	if j.lease != nil && !errors.Is(context.Cause(ctx), errLeaseLost) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := j.lease.release(rctx, func(r *Record) { r.APICalls = j.apiCalls() }); err != nil && !errors.Is(err, errLeaseLost) {
			j.log.Warn("could not release the job lease; it expires by itself", zap.Error(err))
		}
	}
	if j.w.cfg.Hooks.JobHandedBack != nil {
		j.w.cfg.Hooks.JobHandedBack(why)
	}
	return outcome{action: actNak, delay: delay, reason: reason}
}

func (j *job) apiCalls() int64 { return j.baseCalls + j.calls.Load() }

func isNotFound(err error) bool {
	var apiErr *apiclient.Error
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound
}

// apiEventError is the event error of an API error: the API's own code and
// details, or code when given.
func apiEventError(code string, err error) *jobs.EventError {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) {
		return &jobs.EventError{Code: code, Message: err.Error()}
	}
	if code == "" {
		code = apiErr.Code
	}
	if code == "" {
		code = fmt.Sprintf("HTTP_%d", apiErr.StatusCode)
	}
	msg := apiErr.Message
	if msg == "" {
		msg = http.StatusText(apiErr.StatusCode)
	}
	return &jobs.EventError{Code: code, Message: msg, Details: json.RawMessage(apiErr.Details), HTTPStatus: apiErr.StatusCode}
}

// jitter spreads d over [d/2, d) so that retries of many jobs do not align.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encodeEvent returns ev's JSON in a slice of its own size: the job's record
// keeps it as long as the job lasts, thousands of jobs at once.
func encodeEvent(ev *jobs.Event) ([]byte, error) {
	var buf [1024]byte
	b, err := ev.AppendJSON(buf[:0])
	if err != nil {
		return nil, err
	}
	return slices.Clone(b), nil
}
