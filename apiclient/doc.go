// Package apiclient is a client for the CloudNexus REST API
// (https://api.cloudnexus.io/v1): one method per endpoint the provisioner
// uses, Bearer authentication, a deadline per call, and retries with
// exponential backoff and jitter on 5xx, 429 and network errors.
//
// Every failure the API answers is an *Error carrying the HTTP status, the
// API's error body and any Retry-After. Its simulator is package cnsim.
//
// # Retries
//
// GetInstance, DeleteInstance, ListInstances and Me retry with Client.Retry:
// 5xx, 429, network errors, an attempt that ran out of Config.Timeout and a
// 2xx body that cannot be decoded are retried; a Retry-After (delta-seconds
// or HTTP date, capped at 10 minutes) is a floor on the next wait. Other 4xx,
// 401 (ErrUnauthorized) and the end of the caller's context are not.
// CreateInstance makes a single attempt: after a Retryable failure its outcome
// is unknown, and the caller must look the instance up with
// FindInstanceByName before creating it again, because the reference does not
// promise that the API honours the Idempotency-Key header sent with it.
//
// # Overload
//
// A 503 or 429 slows every call of that endpoint made through the Client, not
// only the one that got it: the endpoint's gate closes until the Retry-After
// has passed, then lets one call through as a probe while the others wait for
// its outcome. While the API stays overloaded, a Client therefore sends about
// one request per endpoint per Retry-After, however many jobs are waiting.
//
// # Assumptions
//
// The reference documents only GET /v1/me, GET /v1/instances (status, region,
// page_size) and POST /v1/instances. The client also assumes
// GET and DELETE /v1/instances/{id}, a 1-based "page" query parameter, and
// the Retry-After header; it reads create and get answers given either as the
// instance object or as {"instance": {...}}, and FindInstanceByName stops
// paging if the server ignores "page".
package apiclient
