package requester

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/jobs"
)

// DefaultEventsStream is the events stream of the contract.
const DefaultEventsStream = "PROVISION_EVENTS"

// Options configures a Requester.
type Options struct {
	// Subjects names the request and event subjects; it must match the
	// worker's PROVISIONER_SUBJECT_PREFIX. Defaults to the prefix "provision".
	Subjects jobs.Subjects
	// EventsStream is the stream the events are read from. Defaults to
	// "PROVISION_EVENTS".
	EventsStream string
}

// Requester submits create requests and waits for their outcome. It is safe
// for concurrent use.
type Requester struct {
	js     jetstream.JetStream
	subj   jobs.Subjects
	events string
}

// New returns a Requester publishing and reading through js.
func New(js jetstream.JetStream, opts Options) *Requester {
	if opts.EventsStream == "" {
		opts.EventsStream = DefaultEventsStream
	}
	return &Requester{js: js, subj: opts.Subjects, events: opts.EventsStream}
}

// Submit validates req as the worker will, then publishes it on the create
// subject with Nats-Msg-Id set to its request_id, and returns once JetStream
// has stored it (or found it a duplicate of one it stored within its
// duplicate window).
//
// An invalid request is not published: the error wraps the
// *jobs.ValidationError or *jobs.RejectError that says why.
func (r *Requester) Submit(ctx context.Context, req jobs.Request) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request %s: %w", req.RequestID, err)
	}
	// What the worker will decode: the same checks, on the same bytes.
	if _, err := jobs.DecodeRequest(data); err != nil {
		return fmt.Errorf("request %q not submitted: %w", req.RequestID, err)
	}
	msg := nats.NewMsg(r.subj.Create())
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, req.RequestID)
	msg.Header.Set("content-type", "application/json")
	if _, err := r.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("submit request %s: %w", req.RequestID, err)
	}
	return nil
}

// Wait returns the outcome of the request requestID: its terminal event
// (completed or failed), or a rejected event about it. The caller reads the
// kind: a failed or rejected request is not an error of Wait. Wait returns
// an error only when the events cannot be read or ctx ends (the error then
// wraps ctx.Err()).
//
// Request ids must not be reused for another body: for a reused one, Wait
// may answer with the first request's outcome.
func (r *Requester) Wait(ctx context.Context, requestID string) (*jobs.Event, error) {
	return r.Watch(ctx, requestID, nil)
}

// Watch is Wait that also calls progress, when not nil, with every event
// about the request in the order they were published, the outcome included:
// created, then completed or failed. progress runs on Watch's goroutine.
func (r *Requester) Watch(ctx context.Context, requestID string, progress func(jobs.Event)) (*jobs.Event, error) {
	if !jobs.ValidRequestID(requestID) {
		return nil, fmt.Errorf("watch request %q: not a valid request_id", requestID)
	}
	cons, err := r.js.OrderedConsumer(ctx, r.events, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.subj.EventsFor(requestID)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watch request %s: read stream %s: %w", requestID, r.events, err)
	}
	defer r.deleteConsumer(ctx, cons)
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("watch request %s: %w", requestID, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("wait for request %s: %w", requestID, ctx.Err())
			}
			return nil, fmt.Errorf("watch request %s: %w", requestID, err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			return nil, fmt.Errorf("watch request %s: decode event on %s: %w", requestID, msg.Subject(), err)
		}
		if progress != nil {
			progress(ev)
		}
		if ev.Kind.Terminal() || ev.Kind == jobs.KindRejected {
			return &ev, nil
		}
	}
}

// deleteConsumer removes the ordered consumer from the server at once rather
// than leaving it until its inactivity threshold.
func (r *Requester) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	// Best effort: the server removes it after inactivity anyway.
	_ = r.js.DeleteConsumer(dctx, r.events, info.Name)
}

// Provision submits req and waits for its outcome: Submit, then Wait.
func (r *Requester) Provision(ctx context.Context, req jobs.Request) (*jobs.Event, error) {
	if err := r.Submit(ctx, req); err != nil {
		return nil, err
	}
	return r.Wait(ctx, req.RequestID)
}
