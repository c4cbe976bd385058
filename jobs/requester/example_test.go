package requester_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/requester"
	"github.com/cloudnexus/provisioner/worker"
)

// ExampleRequester_Provision submits two requests and waits for their
// outcome. In production js comes from nats.Connect and jetstream.New; here
// startPipeline runs the whole pipeline in-process: NATS with JetStream, the
// CloudNexus simulator and a worker.
func ExampleRequester_Provision() {
	p, err := startPipeline()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.stop()

	r := requester.New(p.js, requester.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ev, err := r.Provision(ctx, jobs.Request{
		RequestID: "req-7f3a9c",
		Name:      "worker-node-02",
		Plan:      "standard-8",
		Region:    "eu-west-1",
		Image:     "ubuntu-22.04",
		Metadata:  map[string]string{"team": "payments"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Kind, ev.Instance.Name, ev.Instance.Status, ev.Metadata["team"])

	// A region the API does not know: the request fails with the API's error.
	ev, err = r.Provision(ctx, jobs.Request{
		RequestID: "req-mars",
		Name:      "worker-node-03",
		Plan:      "standard-8",
		Region:    "mars-1",
		Image:     "ubuntu-22.04",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ev.Kind, ev.Error.Code, ev.Error.HTTPStatus)

	// Output:
	// completed worker-node-02 running payments
	// failed VALIDATION_ERROR 400
}

// pipeline is an in-process NATS server with JetStream, the simulator and a
// worker consuming from the one and calling the other.
type pipeline struct {
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sim  *cnsim.Server
	stop func()
}

// startPipeline starts a pipeline whose instances run after 50ms, and waits
// until its worker takes requests. stop shuts everything down.
func startPipeline() (*pipeline, error) {
	dir, err := os.MkdirTemp("", "requester-example-")
	if err != nil {
		return nil, err
	}
	var closers []func()
	p := &pipeline{stop: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}
	closers = append(closers, func() { _ = os.RemoveAll(dir) })
	fail := func(err error) (*pipeline, error) { p.stop(); return nil, err }

	p.ns, err = server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return fail(err)
	}
	go p.ns.Start()
	closers = append(closers, func() { p.ns.Shutdown(); p.ns.WaitForShutdown() })
	if !p.ns.ReadyForConnections(10 * time.Second) {
		return fail(errors.New("nats server not ready"))
	}
	if p.nc, err = nats.Connect(p.ns.ClientURL()); err != nil {
		return fail(err)
	}
	closers = append(closers, p.nc.Close)
	if p.js, err = jetstream.New(p.nc); err != nil {
		return fail(err)
	}

	if p.sim, err = cnsim.Start(cnsim.Config{ProvisionDelay: 50 * time.Millisecond}); err != nil {
		return fail(err)
	}
	closers = append(closers, p.sim.Close)
	api, err := apiclient.New(apiclient.Config{BaseURL: p.sim.URL(), APIKey: cnsim.DefaultAPIKey, RetryInitial: 10 * time.Millisecond})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, api.Close)

	w, err := worker.New(worker.Config{
		JetStream:     p.js,
		API:           api,
		ManageStreams: true,
		PollInitial:   20 * time.Millisecond,
		PollMax:       100 * time.Millisecond,
		FetchMaxWait:  200 * time.Millisecond,
	})
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	closers = append(closers, func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); w.Ready() != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("worker not ready: %w", w.Ready()))
		}
	}
	return p, nil
}
