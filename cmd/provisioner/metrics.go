package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// Consumer info is asked of NATS at most once per consumerInfoEvery, and a
// scrape waits at most consumerInfoTimeout for it.
const (
	consumerInfoEvery   = 5 * time.Second
	consumerInfoTimeout = time.Second
)

// metrics are the worker's Prometheus metrics. They live on a registry of
// their own, so that nothing a library registers globally shows up on
// /metrics. Dashboards and alerts use the names: keep them.
type metrics struct {
	reg           *prometheus.Registry
	jobs          *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	timeToRunning prometheus.Histogram
	apiRequests   *prometheus.CounterVec
	apiDuration   *prometheus.HistogramVec
	apiRetries    *prometheus.CounterVec
	redeliveries  prometheus.Counter
	handedBack    *prometheus.CounterVec
}

// newMetrics returns the metrics fed by the worker's hooks and the API
// client's observer, registered with the Go runtime and process metrics.
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provisioner_jobs_total",
			Help: "Jobs finished, by outcome (completed, failed, rejected) and error code (empty when completed).",
		}, []string{"outcome", "code"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "provisioner_job_duration_seconds",
			Help:    "Time from a job's first claim to its completed or failed event.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800},
		}, []string{"outcome"}),
		timeToRunning: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "provisioner_time_to_running_seconds",
			Help:    "Time from an instance's creation to its running status.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800},
		}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provisioner_api_requests_total",
			Help: "CloudNexus API requests, by endpoint and HTTP status (\"error\" when no response came).",
		}, []string{"endpoint", "status"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "provisioner_api_request_duration_seconds",
			Help:    "Duration of one CloudNexus API request, by endpoint.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"endpoint"}),
		apiRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provisioner_api_retries_total",
			Help: "CloudNexus API requests that repeat an earlier attempt of the same call, by endpoint.",
		}, []string{"endpoint"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provisioner_redeliveries_total",
			Help: "Request messages delivered more than once.",
		}),
		handedBack: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provisioner_jobs_handed_back_total",
			Help: "Jobs handed back to the stream for a later delivery, by reason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.jobs, m.jobDuration, m.timeToRunning, m.apiRequests, m.apiDuration, m.apiRetries, m.redeliveries, m.handedBack,
	)
	// Series that exist from the start, so that rates and alerts see a zero
	// rather than nothing.
	m.jobs.WithLabelValues(string(jobs.KindCompleted), "")
	m.redeliveries.Add(0)
	for _, r := range []worker.HandBackReason{worker.HandBackShutdown, worker.HandBackAuth, worker.HandBackLeaseHeld, worker.HandBackNATS, worker.HandBackOther} {
		m.handedBack.WithLabelValues(string(r))
	}
	for _, e := range []string{apiclient.EndpointCreate, apiclient.EndpointGet, apiclient.EndpointDelete, apiclient.EndpointList, apiclient.EndpointMe} {
		m.apiRetries.WithLabelValues(e)
	}
	return m
}

// hooks returns the worker hooks that feed m.
func (m *metrics) hooks() worker.Hooks {
	return worker.Hooks{
		JobFinished: func(kind jobs.Kind, code string, d time.Duration) {
			m.jobs.WithLabelValues(string(kind), codeLabel(code)).Inc()
			// A rejected message never became a job: it has no duration.
			if kind != jobs.KindRejected {
				m.jobDuration.WithLabelValues(string(kind)).Observe(d.Seconds())
			}
		},
		InstanceRunning: func(d time.Duration) { m.timeToRunning.Observe(d.Seconds()) },
		Redelivered:     m.redeliveries.Inc,
		JobHandedBack:   func(r worker.HandBackReason) { m.handedBack.WithLabelValues(string(r)).Inc() },
	}
}

// observeAPICall is the API client's observer.
func (m *metrics) observeAPICall(ci apiclient.CallInfo) {
	status := "error"
	if ci.StatusCode != 0 {
		status = strconv.Itoa(ci.StatusCode)
	}
	m.apiRequests.WithLabelValues(ci.Endpoint, status).Inc()
	m.apiDuration.WithLabelValues(ci.Endpoint).Observe(ci.Duration.Seconds())
	if ci.Retry {
		m.apiRetries.WithLabelValues(ci.Endpoint).Inc()
	}
}

// codeLabel keeps the code label to a bounded set: the contract's codes and
// the API's own (upper case, digits and '_'), anything else as "OTHER".
func codeLabel(code string) string {
	if len(code) > 64 {
		return "OTHER"
	}
	for _, r := range code {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return "OTHER"
		}
	}
	return code
}

// watch registers the gauges read at scrape time from the running worker
// and its NATS connection.
func (m *metrics) watch(w *worker.Worker, nc *nats.Conn) {
	boolGauge := func(name, help string, f func() bool) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if f() {
				return 1
			}
			return 0
		})
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "provisioner_jobs_in_flight",
			Help: "Jobs being worked on by this replica now.",
		}, func() float64 { return float64(w.InFlight()) }),
		boolGauge("provisioner_paused", "1 while the worker takes no jobs because the API rejected its key.", w.Paused),
		boolGauge("provisioner_ready", "1 while the worker is ready to take jobs (as /readyz).", func() bool { return readiness(w, nc) == nil }),
		newConsumerCollector(w.Consumer),
	)
}

// readiness returns nil when the worker can take jobs (NATS connected, the
// consumer bound, not paused by an auth failure), or why it cannot.
func readiness(w *worker.Worker, nc *nats.Conn) error {
	if err := w.Ready(); err != nil {
		return err
	}
	if !nc.IsConnected() {
		return errors.New("NATS not connected")
	}
	return nil
}

// httpHandler serves /healthz (the worker's loop runs), /readyz (see
// readiness) and /metrics (reg).
func httpHandler(w *worker.Worker, nc *nats.Conn, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		if !w.Healthy() {
			http.Error(rw, "worker loop not running", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(rw, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := readiness(w, nc); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(rw, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// consumerCollector exports the consumer's pending and ack pending counts.
// The scrape that finds them older than every asks NATS, waiting at most
// timeout; the others get the cached numbers. Nothing is exported before the
// consumer is bound or while asking fails, rather than stale numbers.
type consumerCollector struct {
	consumer       func() jetstream.Consumer
	every, timeout time.Duration
	now            func() time.Time
	pendingDesc    *prometheus.Desc
	ackPendingDesc *prometheus.Desc

	mu                  sync.Mutex
	asked               time.Time
	ok                  bool
	pending, ackPending uint64
}

func newConsumerCollector(consumer func() jetstream.Consumer) *consumerCollector {
	return &consumerCollector{
		consumer: consumer,
		every:    consumerInfoEvery,
		timeout:  consumerInfoTimeout,
		now:      time.Now,
		pendingDesc: prometheus.NewDesc("provisioner_consumer_pending_messages",
			"Request messages in the stream not yet delivered to the consumer (from consumer info, cached).", nil, nil),
		ackPendingDesc: prometheus.NewDesc("provisioner_consumer_ack_pending_messages",
			"Request messages delivered to the consumer and not yet acknowledged (from consumer info, cached).", nil, nil),
	}
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pendingDesc
	ch <- c.ackPendingDesc
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.asked.IsZero() || now.Sub(c.asked) >= c.every {
		c.asked = now
		c.refresh()
	}
	if !c.ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(c.pending))
	ch <- prometheus.MustNewConstMetric(c.ackPendingDesc, prometheus.GaugeValue, float64(c.ackPending))
}

// refresh asks NATS for the consumer's info; c.mu is held.
func (c *consumerCollector) refresh() {
	c.ok = false
	cons := c.consumer()
	if cons == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	c.ok, c.pending, c.ackPending = true, info.NumPending, uint64(info.NumAckPending)
}
