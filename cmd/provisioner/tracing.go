package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/cloudnexus/provisioner/apiclient"
)

// tracing is what the worker and the API client trace with. It is off (a
// no-op provider, no propagation) unless the OTEL_* variables configure an
// exporter; see tracingEnabled.
type tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	// sdk is the provider to flush and shut down; nil when tracing is off.
	sdk *sdktrace.TracerProvider
}

// tracingEnabled reports whether the environment asks for traces:
// OTEL_TRACES_EXPORTER names an exporter other than "none", or, with it
// unset, an OTLP endpoint is set. OTEL_SDK_DISABLED=true turns it off.
// autoexport alone would pick OTLP to localhost when nothing is set.
func tracingEnabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return true
	}
}

// newTracing sets up tracing as the environment asks. Its error names the
// variable at fault.
func newTracing(ctx context.Context) (*tracing, error) {
	off := &tracing{provider: tracenoop.NewTracerProvider(), propagator: propagation.NewCompositeTextMapPropagator()}
	if !tracingEnabled(os.Getenv) {
		return off, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER (or OTEL_EXPORTER_OTLP_*): %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("provisioner")), // OTEL_SERVICE_NAME overrides it
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler follows OTEL_TRACES_SAMPLER; by default it samples what
	// the request's publisher sampled, and every trace this worker starts.
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &tracing{
		provider:   sdk,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		sdk:        sdk,
	}, nil
}

// enabled reports whether spans are recorded and exported.
func (t *tracing) enabled() bool { return t.sdk != nil }

// shutdown exports the spans not yet exported and stops the exporter.
func (t *tracing) shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// apiHTTPClient returns the API client's HTTP client: nil, for apiclient's
// own, when tracing is off; otherwise one that makes a client span of each
// request and sends its traceparent, over apiclient's own transport for acfg.
// The caller closes its idle connections.
func (t *tracing) apiHTTPClient(acfg apiclient.Config) *http.Client {
	if !t.enabled() {
		return nil
	}
	return &http.Client{Transport: otelhttp.NewTransport(apiclient.NewTransport(acfg),
		otelhttp.WithTracerProvider(t.provider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()), // metrics are Prometheus's
		otelhttp.WithSpanNameFormatter(apiSpanName),
	)}
}

// apiSpanName names an API call's span by method and route, with the
// instance id left out to keep span names few.
func apiSpanName(_ string, r *http.Request) string {
	path := r.URL.Path
	if i := strings.Index(path, "/instances/"); i >= 0 {
		path = path[:i] + "/instances/{id}"
	}
	return "cloudnexus " + r.Method + " " + path
}
