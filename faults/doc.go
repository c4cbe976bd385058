// Package faults is the provisioner's fault-injection suite. It holds no
// code of its own: everything is in its tests, which `make test` runs with
// the rest and `make test-faults` runs alone to rewrite docs/RELIABILITY.md.
//
// The suite builds the real worker binary (cmd/provisioner) once, runs it as
// subprocesses against in-process NATS servers with JetStream (one node, or
// a three-node cluster with R3 streams) and the CloudNexus simulator
// (apiclient/cnsim), and injects faults while the workers run: SIGKILL at
// random points, SIGTERM with jobs in flight, a process frozen (SIGSTOP)
// past its leases and thawed, a NATS server restarted or a cluster node
// shut down, creates that succeed but answer 500 or drop the
// connection while the API ignores Idempotency-Key, 5xx storms with
// Retry-After, a rejected API key, duplicate and conflicting requests, and
// poison messages.
//
// After every case one shared check holds the worker to the promise of
// docs/CONTRACT.md over every request the case published: exactly one
// instance per request (none for one that could not be sent to the API),
// exactly one terminal event per request in PROVISION_EVENTS with the
// expected outcome, every later publish of that event byte-identical to it,
// the job record finished and released, the requests stream drained, every
// worker exiting 0 when stopped, and the API key in no log line and no
// event. TestMain checks that no goroutine leaks.
//
// Each case reports a row (what was injected, how many requests, how many
// were lost, duplicate instances, duplicate terminal events); with
// FAULTS_REPORT=<path> the suite writes them as a Markdown report.
// FAULTS_SEED=<n> fixes the seed of the random kill points (it is logged by
// every run, so a failing run can be repeated).
package faults
