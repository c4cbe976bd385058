package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provisioner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "run the whole pipeline locally: an in-process NATS server with JetStream (127.0.0.1:4222, data in ./data) and the CloudNexus simulator")
	samples := fs.String("samples", "testdata/requests", "with -dev: directory of sample requests (*.json) to publish at start")
	noSamples := fs.Bool("no-samples", false, "with -dev: do not publish the sample requests")
	dataDir := fs.String("data", "data", "with -dev: JetStream store directory")
	natsPort := fs.Int("dev-nats-port", 4222, "with -dev: port of the in-process NATS server on 127.0.0.1 (-1 for any free port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provisioner: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg, err := loadConfig(*dev)
	if err != nil {
		fmt.Fprintf(stderr, "provisioner: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "provisioner: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	tr, err := newTracing(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "provisioner: configuration: %v\n", err)
		return 2
	}
	defer func() {
		// Last, after the worker stopped: its final spans go out too.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(sctx); err != nil {
			log.Warn("flushing traces failed", zap.Error(err))
		}
	}()
	if tr.enabled() {
		// The SDK's own errors (an unreachable collector) go to the log, not to stderr unformatted.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", zap.Error(err)) }))
		log.Info("tracing on")
	}

	if err := serve(ctx, cfg, log, tr, devOptions{enabled: cfg.Dev, samples: *samples, publishSamples: !*noSamples, dataDir: *dataDir, natsPort: *natsPort, out: stdout}); err != nil {
		log.Error("provisioner failed", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(cfg *config, out io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		encCfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), level)), nil
}

type devOptions struct {
	enabled        bool
	samples        string
	publishSamples bool
	dataDir        string
	natsPort       int
	out            io.Writer
}

// maxAPIConns caps the connections to the API. Jobs spend most of their
// time waiting between polls, so far fewer calls than jobs are in flight at
// once, while each connection costs two goroutines and their buffers (about
// 30 KB): 10,000 jobs in flight must not mean 10,000 connections.
const maxAPIConns = 256

// serve builds the parts and runs until ctx ends.
func serve(ctx context.Context, cfg *config, log *zap.Logger, tr *tracing, dev devOptions) error {
	natsURL, apiURL, apiKey := cfg.NATSURL, cfg.APIURL, string(cfg.APIKey)
	if dev.enabled {
		env, err := startDev(dev.dataDir, dev.natsPort, log)
		if err != nil {
			return err
		}
		defer env.close()
		natsURL, apiURL = env.natsURL, env.apiURL
		if apiKey == "" {
			apiKey = env.apiKey
		}
	}

	nc, err := connectNATS(natsURL, cfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	m := newMetrics()
	acfg := apiclient.Config{
		BaseURL:          apiURL,
		APIKey:           apiKey,
		Observer:         m.observeAPICall,
		MaxConnsPerHost:  min(cfg.Concurrency, maxAPIConns),
		UnencryptedHTTP2: cfg.APIH2C || cfg.Dev, // the dev simulator speaks h2c
		Timeout:          cfg.HTTPTimeout,
		RetryInitial:     cfg.RetryInitial,
		RetryMaxInterval: cfg.RetryMaxInterval,
		RetryMaxElapsed:  cfg.RetryMaxElapsed,
	}
	if acfg.HTTPClient = tr.apiHTTPClient(acfg); acfg.HTTPClient != nil {
		defer acfg.HTTPClient.CloseIdleConnections()
	}
	api, err := apiclient.New(acfg)
	if err != nil {
		return fmt.Errorf("api client: %w", err)
	}
	defer api.Close()

	subjects := jobs.Subjects{Prefix: cfg.SubjectPrefix}
	w, err := worker.New(worker.Config{
		JetStream:        js,
		API:              api,
		Subjects:         subjects,
		RequestsStream:   cfg.RequestsStream,
		EventsStream:     cfg.EventsStream,
		Consumer:         cfg.Consumer,
		KVBucket:         cfg.KVBucket,
		ManageStreams:    cfg.ManageStreams,
		Replicas:         cfg.StreamReplicas,
		Concurrency:      cfg.Concurrency,
		AckWait:          cfg.AckWait,
		MaxDeliver:       cfg.MaxDeliver,
		PollInitial:      cfg.PollInitial,
		PollMax:          cfg.PollMax,
		ProvisionTimeout: cfg.ProvisionTimeout,
		DeleteOnFailure:  cfg.DeleteOnFailure,
		ShutdownTimeout:  cfg.ShutdownTimeout,
		Logger:           log,
		Hooks:            m.hooks(),
		TracerProvider:   tr.provider,
		Propagator:       tr.propagator,
	})
	if err != nil {
		return err
	}
	m.watch(w, nc)

	httpAddr := cfg.HTTPAddr
	if dev.enabled && httpAddr == ":8081" {
		httpAddr = "127.0.0.1:8081"
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("PROVISIONER_HTTP_ADDR %s: %w", httpAddr, err)
	}
	srv := &http.Server{Handler: httpHandler(w, nc, m.reg), ReadHeaderTimeout: 5 * time.Second}
	var serving sync.WaitGroup
	serving.Go(func() { _ = srv.Serve(ln) })
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		serving.Wait()
	}()
	log.Info("serving /healthz, /readyz and /metrics", zap.String("addr", ln.Addr().String()))

	if dev.enabled {
		stopPrinter, err := printEvents(nc, subjects, dev.out)
		if err != nil {
			return err
		}
		defer stopPrinter()
		if dev.publishSamples {
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() { publishSamples(ctx, js, subjects, cfg.RequestsStream, dev.samples, log) })
		}
		fmt.Fprintf(dev.out, "\nprovisioner -dev: NATS at %s, CloudNexus simulator at %s\n", natsURL, apiURL)
		fmt.Fprintf(dev.out, "publish a request:  nats --server %s pub %s '{\"request_id\":\"req-1\",\"name\":\"demo-1\",\"plan\":\"standard-4\",\"region\":\"eu-west-1\",\"image\":\"ubuntu-22.04\"}'\n\n", natsURL, subjects.Create())
	}

	return w.Run(ctx)
}

// connectNATS connects with reconnects forever: the worker rides out a
// restarting server instead of exiting.
func connectNATS(url string, cfg *config, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("provisioner"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("NATS error", zap.Error(err))
		}),
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	if cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.NATSCert, cfg.NATSKey))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}
