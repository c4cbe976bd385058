// Package jstest runs an in-process NATS server with JetStream for the
// project's tests, the way net/http/httptest runs an HTTP server: a real
// server on a loopback port, gone when the test ends.
package jstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Run starts a NATS server with JetStream on a free loopback port, its store
// in storeDir (a temporary directory of the test when empty), and shuts it
// down when the test ends.
func Run(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	return RunOnPort(t, -1, storeDir)
}

// RunOnPort is Run on 127.0.0.1:port (-1 for a free port), so that a test
// can start a server again where clients expect it.
func RunOnPort(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return ns
}

// Connect connects to ns and returns the connection and a JetStream context
// on it; the connection is closed when the test ends.
func Connect(t testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}
