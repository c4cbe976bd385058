// Package deploy holds what an operator applies to run the provisioner, and
// no Go code but its tests:
//
//   - Dockerfile: the image (static binaries on distroless, non-root, no
//     shell), built from the repository root;
//   - docker-compose.yml: NATS with JetStream, the CloudNexus simulator and
//     three workers, for local runs;
//   - k8s/: Kubernetes manifests for kustomize: a base (Deployment,
//     ConfigMap, Secret, Service, PodDisruptionBudget, KEDA ScaledObject) and
//     a production overlay;
//   - nats/: the streams, consumer and job state bucket, for the nats CLI
//     (setup.sh and its JSON files) and as NACK resources (nats/nack);
//   - grafana/: a dashboard of the worker's metrics.
//
// docs/OPERATIONS.md tells how to use them. The tests parse every manifest
// and cross-check it against the code, so that a manifest cannot drift from
// the program it runs: variable names and defaults against
// cmd/provisioner/config.go, ports and probe paths against the HTTP server,
// the shutdown grace against PROVISIONER_SHUTDOWN_TIMEOUT, the image against
// the cmd/ programs, the metric names of the dashboard, the alerts and the
// guide against those the code exports. Unless -short, they also build the
// binaries and run them with the compose file's flags and environment and the
// Kubernetes ConfigMap's values against a real NATS server, and compare the
// streams, consumer and bucket of nats/ with those the worker creates itself.
package deploy
