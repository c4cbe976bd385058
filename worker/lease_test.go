package worker

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/internal/jstest"
)

// TestLeaseConfirm checks what a create is sent under: a lease written
// recently is taken as held without a round trip; an older one is renewed
// first; one another delivery took over while this one was frozen is lost,
// and the job's context is cancelled with errLeaseLost.
func TestLeaseConfirm(t *testing.T) {
	const ttl = 3 * time.Second
	tests := []struct {
		name      string
		later     time.Duration // how long after the claim confirm runs
		takenOver bool          // another delivery claims the job before
		wantErr   error
		wantWrite bool
	}{
		{name: "fresh: no write", later: ttl / 3},
		{name: "old but ours: renewed", later: ttl * 3 / 4, wantWrite: true},
		{name: "expired, nobody took it: renewed", later: 2 * ttl, wantWrite: true},
		{name: "taken over while frozen: lost", later: 2 * ttl, takenOver: true, wantErr: errLeaseLost},
	}
	kv := leaseTestBucket(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := time.Now()
			var offset atomic.Int64
			now := func() time.Time { return base.Add(time.Duration(offset.Load())) }
			ctx := context.Background()
			key := "lease-" + strconv.Itoa(i)
			l, _, res, _, err := claim(ctx, kv, key, "a/1", "fp", 1, ttl, true, now)
			if err != nil || (res != claimed && res != claimedNew) {
				t.Fatalf("claim: %v (result %d)", err, res)
			}
			jobCtx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			l.lost = cancel

			offset.Store(int64(tt.later))
			if tt.takenOver {
				if _, _, res, _, err := claim(ctx, kv, key, "b/1", "fp", 1, ttl, true, now); err != nil || res != claimed {
					t.Fatalf("take over: %v (result %d)", err, res)
				}
			}
			before := leaseTestRevision(t, kv, key)
			err = l.confirm(jobCtx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("confirm: %v, want %v", err, tt.wantErr)
			}
			if wrote := leaseTestRevision(t, kv, key) != before; wrote != tt.wantWrite {
				t.Errorf("confirm wrote the record: %v, want %v", wrote, tt.wantWrite)
			}
			if lost := errors.Is(context.Cause(jobCtx), errLeaseLost); lost != (tt.wantErr != nil) {
				t.Errorf("job cancelled as lost: %v, want %v", lost, tt.wantErr != nil)
			}
		})
	}
}

// leaseTestBucket starts an in-process JetStream server and returns a
// bucket on it; both go when the test ends.
func leaseTestBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	js := internalJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "lease_test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func leaseTestRevision(t *testing.T, kv jetstream.KeyValue, key string) uint64 {
	t.Helper()
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return e.Revision()
}

// internalJetStream starts an in-process NATS server with JetStream for the
// package's internal tests and returns a JetStream context on it; both go
// when the test ends.
func internalJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := jstest.Connect(t, jstest.Run(t, ""))
	return js
}

// TestRecordWriteReusesBuffer: records are encoded into pooled buffers that
// are used again as soon as a write returns; what a write stored must not
// change when the next record is encoded into the same buffer.
func TestRecordWriteReusesBuffer(t *testing.T) {
	kv := leaseTestBucket(t)
	ctx := context.Background()
	want := map[string][]byte{}
	for i := range 50 {
		rec := Record{Fingerprint: "fp-" + strconv.Itoa(i), Owner: "owner-" + strconv.Itoa(i), StartedAt: time.Now().UTC(),
			LastError: string(make([]byte, i*40)), Attempts: i}
		key := "buf-" + strconv.Itoa(i)
		if _, err := rec.write(func(v []byte) (uint64, error) { return kv.Create(ctx, key, v) }); err != nil {
			t.Fatal(err)
		}
		want[key] = rec.appendJSON(nil)
	}
	for key, w := range want {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Value()) != string(w) {
			t.Errorf("%s stored %q, want %q", key, e.Value(), w)
		}
	}
}
