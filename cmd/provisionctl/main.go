// Command provisionctl submits create requests to the provisioner and
// inspects them: submit (and wait for the outcome), status of one request
// from its job record, watch events as they come, list in-flight and recent
// jobs. It reads the same environment variables as the worker for NATS and
// the names of subjects, streams and bucket.
//
// Exit codes: 0 success (the request completed), 1 the request failed or was
// rejected, 2 usage or configuration error, 3 timed out waiting, 4 not found,
// 5 NATS unreachable. See docs/PROVISIONCTL.md.
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
