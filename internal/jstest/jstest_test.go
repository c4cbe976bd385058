package jstest_test

import (
	"context"
	"net"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/internal/jstest"
)

// TestRunServesJetStream: the server keeps a stream and its message, and a
// server started again on the same port and store has them still.
func TestRunServesJetStream(t *testing.T) {
	dir := t.TempDir()
	ns := jstest.Run(t, dir)
	_, js := jstest.Connect(t, ns)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.one", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	port := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()

	again := jstest.RunOnPort(t, port, dir)
	if got := again.Addr().(*net.TCPAddr).Port; got != port {
		t.Fatalf("restarted on port %d, want %d", got, port)
	}
	_, js = jstest.Connect(t, again)
	msg, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	m, err := msg.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hello" {
		t.Errorf("message 1 is %q after the restart, want hello", m.Data)
	}
}
