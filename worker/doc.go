// Package worker is the JetStream side of the provisioner and the life of one
// job: it consumes create requests from a durable pull consumer, claims each
// request in a KV bucket with a lease, creates the instance through the
// CloudNexus API exactly once, polls it until it is running, publishes the
// events of docs/CONTRACT.md and acknowledges the request.
//
// job.go holds the state machine of one job top to bottom; worker.go the
// fetch loop, the lease keeper, the pause on a rejected API key and shutdown;
// record.go the KV record; setup.go the streams, consumer and bucket.
// docs/DESIGN.md tells the long story.
package worker
