package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
)

// devEnv is what -dev runs in-process: a NATS server with JetStream and the
// CloudNexus simulator.
type devEnv struct {
	natsURL, apiURL, apiKey string
	close                   func()
}

// startDev starts NATS on 127.0.0.1:port (4222 by default, so that the nats
// CLI's default server reaches it) and the simulator on a free port.
func startDev(dataDir string, port int, log *zap.Logger) (*devEnv, error) {
	ns, err := server.NewServer(&server.Options{
		ServerName: "provisioner-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("dev NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("dev NATS server did not start on 127.0.0.1:%d (is another NATS server running there?)", port)
	}

	sim := cnsim.New(cnsim.Config{ProvisionDelay: 3 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("dev simulator: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second, Protocols: cnsim.Protocols()}
	go func() { _ = srv.Serve(ln) }()
	log.Info("dev mode: in-process NATS and CloudNexus simulator",
		zap.String("nats", ns.ClientURL()), zap.String("data", dataDir), zap.String("api", "http://"+ln.Addr().String()+"/v1"))
	return &devEnv{
		natsURL: ns.ClientURL(),
		apiURL:  "http://" + ln.Addr().String() + "/v1",
		apiKey:  cnsim.DefaultAPIKey,
		close: func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			ns.Shutdown()
			ns.WaitForShutdown()
		},
	}, nil
}

// publishSamples publishes every *.json request in dir, with Nats-Msg-Id set
// to its request_id as publishers should.
func publishSamples(ctx context.Context, js jetstream.JetStream, subjects jobs.Subjects, stream, dir string, log *zap.Logger) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		log.Warn("no sample requests to publish", zap.String("dir", dir))
		return
	}
	sort.Strings(files)
	// The worker creates the stream; wait for it.
	for {
		if _, err := js.Stream(ctx, stream); err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			log.Warn("cannot read sample", zap.String("file", f), zap.Error(err))
			continue
		}
		msg := nats.NewMsg(subjects.Create())
		msg.Data = data
		var head struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(data, &head) == nil && head.RequestID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, head.RequestID)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			log.Warn("cannot publish sample", zap.String("file", f), zap.Error(err))
			continue
		}
		log.Info("published sample request", zap.String("file", filepath.Base(f)), zap.String("request_id", head.RequestID))
	}
}

// printEvents prints every event as it arrives, one readable line each.
func printEvents(nc *nats.Conn, subjects jobs.Subjects, out io.Writer) (stop func(), err error) {
	var mu sync.Mutex
	sub, err := nc.Subscribe(subjects.Events(), func(m *nats.Msg) {
		line := formatEvent(m.Data)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(out, line)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to events: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// formatEvent renders an event for a person.
func formatEvent(data []byte) string {
	var ev jobs.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return "event (undecodable): " + string(data)
	}
	return ev.Summary()
}
