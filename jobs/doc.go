// Package jobs is the provisioner's wire format: the create request other
// services publish, the events the worker answers with, their validation and
// the subject names they travel on. It does no I/O.
//
// The contract it implements is documented in docs/CONTRACT.md.
package jobs
