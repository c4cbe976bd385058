package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Record is a job's state in the KV bucket, under its request_id, as JSON. It is the
// only state that survives a crash: a redelivered request resumes from it.
type Record struct {
	// Fingerprint of the request body; another body under the same
	// request_id is an idempotency conflict.
	Fingerprint string `json:"fingerprint"`
	// Owner and LeaseUntil are the lease: while LeaseUntil is in the future
	// only Owner acts on the job. Owner is unique per delivery being worked.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// StreamSequence of the message being worked, for operators.
	StreamSequence uint64 `json:"stream_sequence,omitempty"`
	// StartedAt is when the job was first claimed.
	StartedAt time.Time `json:"started_at"`
	// Attempts counts deliveries that ended in a retryable failure.
	Attempts int `json:"attempts,omitempty"`
	// LastError is the error of the last failed attempt.
	LastError string `json:"last_error,omitempty"`
	// APICalls made for this job over all deliveries so far.
	APICalls int64 `json:"api_calls,omitempty"`
	// CreateStartedAt is set before the first POST (for a new valid request,
	// by the claim that creates the record, since the POST follows at once):
	// from then on the outcome of a create is unknown until InstanceID is
	// set, so a resumed job looks for the instance by name before creating.
	CreateStartedAt time.Time `json:"create_started_at,omitzero"`
	// InstanceID and InstanceCreatedAt are set right after the create
	// succeeded (or an instance was adopted).
	InstanceID        string    `json:"instance_id,omitempty"`
	InstanceCreatedAt time.Time `json:"instance_created_at,omitzero"`
	// Created is the created event as published.
	Created json.RawMessage `json:"created_event,omitempty"`
	// Terminal is the terminal event as published; once set the job is done
	// and a duplicate of the request is answered with these exact bytes.
	Terminal json.RawMessage `json:"terminal_event,omitempty"`
}

// Phase names where a job stands, for logs and provisionctl.
func (r *Record) Phase() string {
	switch {
	case r.Terminal != nil:
		return "done"
	case r.InstanceID != "":
		return "polling"
	case !r.CreateStartedAt.IsZero():
		return "creating"
	default:
		return "claimed"
	}
}

// errLeaseLost means another delivery took the job over: this one must stop
// acting on it at once.
var errLeaseLost = errors.New("job lease lost to another worker")

// lease is one delivery's hold on a job's record. Every write goes through
// it, compare-and-set on the revision it last wrote, so a delivery that lost
// the job (its lease expired and another took it) cannot change it.
type lease struct {
	kv    jetstream.KeyValue
	key   string
	owner string
	ttl   time.Duration
	now   func() time.Time
	// lost cancels the job's context when the lease is lost.
	lost context.CancelCauseFunc

	mu  sync.Mutex
	rec Record
	rev uint64
}

// get returns a copy of the current record.
func (l *lease) get() Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// update applies change to the record and writes it with compare-and-set,
// extending the lease. It returns errLeaseLost (and cancels the job) when the
// record was changed by someone else.
func (l *lease) update(ctx context.Context, change func(*Record)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := l.rec
	if change != nil {
		change(&next)
	}
	if next.Owner == l.owner {
		next.LeaseUntil = l.now().Add(l.ttl)
	}
	rev, err := next.write(func(v []byte) (uint64, error) { return l.kv.Update(ctx, l.key, v, l.rev) })
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			l.lost(errLeaseLost)
			return errLeaseLost
		}
		return fmt.Errorf("write job record: %w", err)
	}
	l.rec, l.rev = next, rev
	return nil
}

// confirm returns nil when the lease is surely still held: written less
// than two thirds of its ttl ago (the lease keeper writes it every third).
// Otherwise, after the process was frozen or could not reach the bucket for
// a while, it renews the lease at once and returns the error of that:
// errLeaseLost when another delivery has taken the job over meanwhile.
func (l *lease) confirm(ctx context.Context) error {
	l.mu.Lock()
	fresh := l.now().Before(l.rec.LeaseUntil.Add(-l.ttl / 3))
	l.mu.Unlock()
	if fresh {
		return nil
	}
	return l.update(ctx, nil)
}

// renew extends a held lease; it does nothing once the lease is released.
func (l *lease) renew(ctx context.Context) error {
	l.mu.Lock()
	released := l.rec.Owner != l.owner // the record no longer names us: nothing to renew
	l.mu.Unlock()
	if released {
		return nil
	}
	return l.update(ctx, nil)
}

// release gives the lease up so that another delivery can take the job at
// once, keeping whatever else the record holds.
func (l *lease) release(ctx context.Context, change func(*Record)) error {
	return l.update(ctx, func(r *Record) {
		if change != nil {
			change(r)
		}
		r.Owner, r.LeaseUntil = "", time.Time{}
	})
}

// claimResult says what a delivery found when it tried to claim a job.
type claimResult int

const (
	claimed       claimResult = iota // the lease is ours
	claimedNew                       // the lease is ours, on a record this claim created
	claimDone                        // the job has a terminal event
	claimHeld                        // another delivery holds a live lease
	claimConflict                    // the request_id has another body
)

// claim takes the lease on key for owner, creating the record when the
// request is new (claimedNew). startCreate records in a new record that the
// create is starting (CreateStartedAt), for a caller that creates the
// instance right after the claim: that saves a write per job. On claimHeld
// the returned duration is how long the other lease has left; on claimDone
// and claimConflict the record is returned.
func claim(ctx context.Context, kv jetstream.KeyValue, key, owner, fingerprint string, seq uint64, ttl time.Duration, startCreate bool, now func() time.Time) (*lease, Record, claimResult, time.Duration, error) {
	for try := 0; ; try++ {
		t := now()
		// Most requests are new: the first try creates the record without
		// reading it first, and reads it only when it exists.
		var entry jetstream.KeyValueEntry
		var err error = jetstream.ErrKeyNotFound
		if try > 0 {
			entry, err = kv.Get(ctx, key)
		}
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rec := Record{Fingerprint: fingerprint, Owner: owner, LeaseUntil: t.Add(ttl), StreamSequence: seq, StartedAt: t}
			if startCreate {
				rec.CreateStartedAt = t
			}
			rev, err := rec.write(func(v []byte) (uint64, error) { return kv.Create(ctx, key, v) })
			if err == nil {
				return &lease{kv: kv, key: key, owner: owner, ttl: ttl, now: now, rec: rec, rev: rev}, rec, claimedNew, 0, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) || try > 2 {
				return nil, Record{}, 0, 0, fmt.Errorf("create job record: %w", err)
			}
			continue // it exists (a redelivery, a duplicate, or another delivery was first): read it
		case err != nil:
			return nil, Record{}, 0, 0, fmt.Errorf("read job record: %w", err)
		}

		var rec Record
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			return nil, Record{}, 0, 0, fmt.Errorf("decode job record (revision %d): %w", entry.Revision(), err)
		}
		switch {
		case rec.Fingerprint != fingerprint:
			return nil, rec, claimConflict, 0, nil
		case rec.Terminal != nil:
			return nil, rec, claimDone, 0, nil
		case rec.Owner != "" && rec.LeaseUntil.After(t):
			return nil, rec, claimHeld, rec.LeaseUntil.Sub(t), nil
		}
		rec.Owner, rec.LeaseUntil, rec.StreamSequence = owner, t.Add(ttl), seq
		rev, err := rec.write(func(v []byte) (uint64, error) { return kv.Update(ctx, key, v, entry.Revision()) })
		if err == nil {
			return &lease{kv: kv, key: key, owner: owner, ttl: ttl, now: now, rec: rec, rev: rev}, rec, claimed, 0, nil
		}
		if !(errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)) || try > 2 {
			return nil, Record{}, 0, 0, fmt.Errorf("take over job record: %w", err)
		}
	}
}
