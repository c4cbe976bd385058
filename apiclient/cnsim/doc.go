// Package cnsim is a CloudNexus API simulator for tests, local runs and
// benchmarks, the way net/http/httptest sits beside net/http. New returns an
// http.Handler; Start also serves it on a loopback port, and the cnsim
// command serves it on an address of your choice. Both speak HTTP/1.1 and
// HTTP/2 without TLS (h2c with prior knowledge, see Protocols); HTTP2Calls
// counts the calls that came over HTTP/2.
//
// # What it serves
//
// Under the base path /v1, with the error envelope of the API reference
// ({"error":{"code","message","details"}}) for every failure:
//
//   - GET /v1/me: 200 {"id":"acct_sim","name":"CloudNexus simulator"}.
//   - POST /v1/instances: 201 with the new instance ("inst_" and 8 hex
//     digits, status pending). 400 INVALID_JSON for a body that is not JSON;
//     400 VALIDATION_ERROR with a detail for every bad field (name and image
//     required; plan and region among Config.Plans and Config.Regions), the
//     message naming the first ("Invalid region specified"); 413 for a body
//     over 64 KiB.
//   - GET /v1/instances/{id}: 200 instance, or 404 NOT_FOUND.
//   - DELETE /v1/instances/{id}: 204, or 404 NOT_FOUND. A deleted instance
//     disappears from get and list but stays counted in Creates.
//   - GET /v1/instances?status=&region=&page_size=&page=: one page of the
//     instances in creation order, with meta {total, page, page_size}.
//     page_size defaults to 25 and may not exceed 100, page counts from 1;
//     a bad value of either is a 400 VALIDATION_ERROR. status and region are
//     filters, not checked.
//
// Other paths answer 404 NOT_FOUND and other methods 405
// METHOD_NOT_ALLOWED. Every call needs "Authorization: Bearer <key>" with
// the key of Config.APIKey or Server.SetAPIKey; any other answers 401
// UNAUTHORIZED "Invalid API key".
//
// The reference documents only GET /v1/me, GET and POST /v1/instances and
// the error format. The rest is this project's assumption of how the real
// API behaves, and the simulator's behaviour: GET and DELETE by id, the page
// parameter, Idempotency-Key, Retry-After and 429.
//
// # Instances
//
// A new instance is pending for Config.ProvisionDelay (2s unless set;
// Config.Instant for none; Config.ProvisionTime per instance), then running
// with an ipv4 in 10.0.0.0/8. Its status is computed from Config.Now on each
// read, never by a timer, so a simulator holds any number of pending
// instances at the cost of their memory.
//
// # Idempotency
//
// Unless Config.IgnoreIdempotencyKey is set, a create carrying an
// Idempotency-Key already used by a successful create makes nothing: it
// answers 201 with the first instance as it is now (running if it is
// running, terminated if it was deleted) and the header
// "Idempotent-Replayed: true", whatever the first call was answered (also
// after CreateThen500 or CreateThenDrop). With a different body it answers
// 409 IDEMPOTENCY_KEY_REUSED. A create that failed validation or was failed
// by ErrorRate does not use up its key.
//
// # Faults
//
// Faults, set in Config.Faults and changed at any time with
// Server.SetFaults, inject errors per endpoint (with an optional
// Retry-After), latency, creates that succeed but answer 500 or drop the
// connection, and instances that stay pending for ever or end in error.
// Random choices come from one source seeded with Config.Seed, so a given
// sequence of calls is answered the same way each run.
//
// Note for clients: net/http's Transport silently resends a request that
// carries an Idempotency-Key header, and whose body it can rewind, when a
// reused connection is closed before any answer. A dropped create may then
// look like a success to the caller, and with IgnoreIdempotencyKey set it
// makes a second instance.
//
// # Counters
//
// Calls, Creates, CreatesByName, DuplicateNames, Deletes, Instances and
// Instance let a test or benchmark check what the client did, for example
// that no name was created twice.
package cnsim
