// Package requester is the publisher side of the provisioner's contract
// (docs/CONTRACT.md), for Go services: Submit publishes a create request
// with Nats-Msg-Id set to its request_id and waits for JetStream to store it;
// Wait and Watch read the request's events from the events stream until its
// outcome; Provision does both.
//
// Events are read from the stream with an ordered consumer that starts at
// the beginning of provision.events.*.<request_id>, so an answer published
// before the wait began is found, and a duplicate request answered by an
// event JetStream dropped as a duplicate is answered all the same.
package requester
