package worker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/cloudnexus/provisioner/jobs"
)

// Config configures a Worker. New applies the defaults and validates it.
type Config struct {
	// JetStream is the JetStream context to consume and publish with. Required.
	JetStream jetstream.JetStream
	// API is the CloudNexus client. Required.
	API API

	// Subjects names the request and event subjects. Defaults to the prefix "provision".
	Subjects jobs.Subjects
	// RequestsStream is the stream of create requests. Defaults to "PROVISION_REQUESTS".
	RequestsStream string
	// EventsStream is the stream of events. Defaults to "PROVISION_EVENTS".
	EventsStream string
	// Consumer is the durable pull consumer all replicas share. Defaults to "provisioner".
	Consumer string
	// KVBucket is the job state bucket. Defaults to "provision_jobs".
	KVBucket string
	// ManageStreams creates or updates the streams, consumer and bucket at
	// start; when false they are only checked. Defaults to false in the
	// struct; cmd/provisioner sets it from PROVISIONER_MANAGE_STREAMS (true).
	ManageStreams bool
	// Replicas is the replica count of the streams and bucket it creates. Defaults to 1.
	Replicas int
	// DuplicateWindow is the duplicate window of both streams: a request or
	// event published again with the same Nats-Msg-Id within it is dropped
	// by JetStream. Defaults to 2m.
	DuplicateWindow time.Duration
	// EventsMaxAge is how long the events stream keeps events. Defaults to 7 days.
	EventsMaxAge time.Duration

	// Concurrency is the number of jobs in flight on this replica. Defaults to 64.
	Concurrency int
	// AckWait is the consumer's ack wait; jobs send progress acks and renew
	// their lease every third of it. Defaults to 30s.
	AckWait time.Duration
	// MaxDeliver is the number of deliveries ending in a retryable failure
	// after which the job fails with RETRIES_EXHAUSTED. Defaults to 20.
	MaxDeliver int
	// PollInitial is the first wait before polling a new instance. Defaults to 1s.
	PollInitial time.Duration
	// PollMax caps the wait between two polls. Defaults to 15s.
	PollMax time.Duration
	// ProvisionTimeout is the time from creation to running after which the
	// job fails with PROVISION_TIMEOUT. Defaults to 15m.
	ProvisionTimeout time.Duration
	// NotFoundGrace is how long a 404 for a just-created instance is taken
	// for the API's eventual consistency. Defaults to 30s.
	NotFoundGrace time.Duration
	// DeleteOnFailure deletes an instance that was created but failed or
	// timed out. Defaults to false in the struct; cmd/provisioner sets it from
	// PROVISIONER_DELETE_ON_FAILURE (true).
	DeleteOnFailure bool
	// ShutdownTimeout is how long Run lets in-flight jobs finish after its
	// context ends before handing them back. Defaults to 25s.
	ShutdownTimeout time.Duration
	// AuthProbeInterval is how often a worker paused by a 401 probes the API.
	// Defaults to 10s.
	AuthProbeInterval time.Duration
	// FetchMaxWait is how long one pull request waits for messages. Defaults to 5s.
	FetchMaxWait time.Duration

	// ID names this replica in job leases and logs. Defaults to host name and process id.
	ID string
	// Logger receives the worker's logs. Defaults to a no-op logger.
	Logger *zap.Logger
	// Hooks receive notifications for metrics; any field may be nil.
	Hooks Hooks
	// TracerProvider makes the span of each job. Defaults to a no-op provider.
	TracerProvider trace.TracerProvider
	// Propagator reads the trace context of a request message's headers and
	// writes it on every event's. Defaults to none: no trace is continued.
	Propagator propagation.TextMapPropagator
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Hooks are called on the worker's events, for metrics and tests. Each is
// optional and must not block.
type Hooks struct {
	// JobFinished is called when a job ends with a terminal or rejected event.
	JobFinished func(kind jobs.Kind, code string, duration time.Duration)
	// InstanceRunning is called with the time from creation to running.
	InstanceRunning func(d time.Duration)
	// Redelivered is called for each message delivered more than once.
	Redelivered func()
	// JobHandedBack is called when a job is handed back to the stream, with why.
	JobHandedBack func(reason HandBackReason)
}

// HandBackReason is why a job was handed back to the stream: a small fixed
// set, fit for a metric label; the log has the details.
type HandBackReason string

// The reasons a job is handed back.
const (
	HandBackShutdown  HandBackReason = "shutdown"   // the worker is stopping
	HandBackAuth      HandBackReason = "auth"       // the API rejected the key
	HandBackLeaseHeld HandBackReason = "lease_held" // another delivery holds the job
	HandBackNATS      HandBackReason = "nats"       // the job record or an event could not be written
	HandBackOther     HandBackReason = "other"
)

func (c *Config) withDefaults() {
	if c.RequestsStream == "" {
		c.RequestsStream = "PROVISION_REQUESTS"
	}
	if c.EventsStream == "" {
		c.EventsStream = "PROVISION_EVENTS"
	}
	if c.Consumer == "" {
		c.Consumer = "provisioner"
	}
	if c.KVBucket == "" {
		c.KVBucket = "provision_jobs"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = 7 * 24 * time.Hour
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 20
	}
	if c.PollInitial == 0 {
		c.PollInitial = time.Second
	}
	if c.PollMax == 0 {
		c.PollMax = 15 * time.Second
	}
	if c.ProvisionTimeout == 0 {
		c.ProvisionTimeout = 15 * time.Minute
	}
	if c.NotFoundGrace == 0 {
		c.NotFoundGrace = 30 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.AuthProbeInterval == 0 {
		c.AuthProbeInterval = 10 * time.Second
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 5 * time.Second
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.NewCompositeTextMapPropagator()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("worker: %s %s", field, fmt.Sprintf(format, args...)))
	}
	if c.JetStream == nil {
		bad("JetStream", "is required")
	}
	if c.API == nil {
		bad("API", "is required")
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("Replicas", "must be 1 to 5, got %d", c.Replicas)
	}
	if c.Concurrency < 1 {
		bad("Concurrency", "must be at least 1, got %d", c.Concurrency)
	}
	if c.AckWait < time.Second {
		bad("AckWait", "must be at least 1s, got %s", c.AckWait)
	}
	if c.MaxDeliver < 1 {
		bad("MaxDeliver", "must be at least 1, got %d", c.MaxDeliver)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInitial", c.PollInitial}, {"PollMax", c.PollMax}, {"ProvisionTimeout", c.ProvisionTimeout},
		{"NotFoundGrace", c.NotFoundGrace}, {"ShutdownTimeout", c.ShutdownTimeout},
		{"AuthProbeInterval", c.AuthProbeInterval}, {"FetchMaxWait", c.FetchMaxWait}, {"EventsMaxAge", c.EventsMaxAge},
		{"DuplicateWindow", c.DuplicateWindow},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative, got %s", d.v)
		}
	}
	if c.PollMax < c.PollInitial {
		bad("PollMax", "must be at least PollInitial (%s), got %s", c.PollInitial, c.PollMax)
	}
	if c.FetchMaxWait < 100*time.Millisecond {
		bad("FetchMaxWait", "must be at least 100ms, got %s", c.FetchMaxWait)
	}
	return errors.Join(errs...)
}
