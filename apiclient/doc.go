// Package apiclient is a client for the CloudNexus REST API
// (https://api.cloudnexus.io/v1): one method per endpoint the provisioner
// uses, Bearer authentication, a deadline per call, and retries with
// exponential backoff and jitter on 5xx, 429 and network errors.
//
// Every failure the API answers is an *Error carrying the HTTP status, the
// API's error body and any Retry-After. Its simulator is package cnsim.
package apiclient
