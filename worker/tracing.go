package worker

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/cloudnexus/provisioner/jobs"
)

// tracerName is the instrumentation scope of the worker's spans.
const tracerName = "github.com/cloudnexus/provisioner/worker"

// Span attributes of a job beyond the messaging conventions.
const (
	attrRequestID = attribute.Key("provisioner.request_id")
	attrOutcome   = attribute.Key("provisioner.outcome")
	attrEventKind = attribute.Key("provisioner.event.kind")
)

// headerCarrier lets a propagator read and write NATS headers. NATS headers
// are case-sensitive; Get also finds a key written in another case, since
// publishers in other languages may send "Traceparent".
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v := nats.Header(h).Get(key); v != "" {
		return v
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startJobSpan starts the span of one delivery, continuing the trace whose
// context the request message carries, if any.
func (w *Worker) startJobSpan(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) (context.Context, trace.Span) {
	ctx = w.cfg.Propagator.Extract(ctx, headerCarrier(msg.Headers()))
	return w.tracer.Start(ctx, "process "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("nats"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(msg.Subject()),
			semconv.MessagingConsumerGroupName(w.cfg.Consumer),
			attribute.Int64("messaging.nats.stream_sequence", int64(meta.Sequence.Stream)),
			attribute.Int64("messaging.nats.delivery_count", int64(meta.NumDelivered)),
		))
}

// traceRequest notes the request a job works on its span.
func traceRequest(ctx context.Context, requestID string) {
	trace.SpanFromContext(ctx).SetAttributes(attrRequestID.String(requestID))
}

// traceEvent writes the trace context of ctx on an event's headers and notes
// the event on the job's span; a failed or rejected event marks the span as
// an error.
func (w *Worker) traceEvent(ctx context.Context, h nats.Header, ev *jobs.Event) {
	w.cfg.Propagator.Inject(ctx, headerCarrier(h))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("event published", trace.WithAttributes(attrEventKind.String(string(ev.Kind))))
	if ev.Error != nil && (ev.Kind == jobs.KindFailed || ev.Kind == jobs.KindRejected) {
		span.SetStatus(codes.Error, ev.Error.Code)
	}
}
