// Command provisioner is the provisioning worker: it consumes create
// requests from NATS JetStream, provisions CloudNexus instances and publishes
// their outcome. With -dev it brings its own NATS server and API simulator.
//
// Configuration is read from the environment (see docs/CONFIGURATION.md).
// Exit codes: 0 after a clean stop, 1 on a runtime failure, 2 on a bad flag
// or configuration value.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
