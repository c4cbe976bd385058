package worker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// RequestsStreamConfig is the requests stream of docs/CONTRACT.md.
func (c *Config) RequestsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.RequestsStream,
		Description: "CloudNexus provisioning requests",
		Subjects:    []string{c.Subjects.Requests()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	}
}

// EventsStreamConfig is the events stream of docs/CONTRACT.md.
func (c *Config) EventsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.EventsStream,
		Description: "CloudNexus provisioning events",
		Subjects:    []string{c.Subjects.Events()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.EventsMaxAge,
		Duplicates:  c.DuplicateWindow,
	}
}

// ConsumerConfig is the durable pull consumer shared by all replicas.
//
// MaxDeliver is unlimited on the server: the worker itself fails a job with
// RETRIES_EXHAUSTED after Config.MaxDeliver failed attempts, so that no job
// is ever dropped silently and hand-backs (shutdown, a paused API key, a lease
// held elsewhere) do not count as attempts. MaxAckPending is unlimited too:
// each replica fetches only what it has free slots for.
func (c *Config) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "CloudNexus provisioner workers",
		FilterSubject: c.Subjects.Create(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      0, // inherit the stream's
	}
}

// KVConfig is the job state bucket: one key per request_id, holding the
// job's record (see record.go). Its history is 1: only the current record
// matters, and revisions make the compare-and-set.
func (c *Config) KVConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      c.KVBucket,
		Description: "CloudNexus provisioner job state",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// setup creates or updates (ManageStreams) or looks up the streams, consumer
// and bucket. It returns an error naming the first missing or failing one.
func (w *Worker) setup(ctx context.Context) (jetstream.Consumer, jetstream.KeyValue, error) {
	js := w.cfg.JetStream
	if w.cfg.ManageStreams {
		if _, err := js.CreateOrUpdateStream(ctx, w.cfg.RequestsStreamConfig()); err != nil {
			return nil, nil, fmt.Errorf("create or update stream %s: %w", w.cfg.RequestsStream, err)
		}
		if _, err := js.CreateOrUpdateStream(ctx, w.cfg.EventsStreamConfig()); err != nil {
			return nil, nil, fmt.Errorf("create or update stream %s: %w", w.cfg.EventsStream, err)
		}
		kv, err := js.CreateOrUpdateKeyValue(ctx, w.cfg.KVConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("create or update key-value bucket %s: %w", w.cfg.KVBucket, err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, w.cfg.RequestsStream, w.cfg.ConsumerConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("create or update consumer %s on %s: %w", w.cfg.Consumer, w.cfg.RequestsStream, err)
		}
		return cons, kv, nil
	}
	if _, err := js.Stream(ctx, w.cfg.EventsStream); err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", w.cfg.EventsStream, err)
	}
	kv, err := js.KeyValue(ctx, w.cfg.KVBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("key-value bucket %s: %w", w.cfg.KVBucket, err)
	}
	cons, err := js.Consumer(ctx, w.cfg.RequestsStream, w.cfg.Consumer)
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s on %s: %w", w.cfg.Consumer, w.cfg.RequestsStream, err)
	}
	return cons, kv, nil
}
