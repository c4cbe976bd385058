package jobs_test

import (
	"errors"
	"fmt"

	"github.com/cloudnexus/provisioner/jobs"
)

func ExampleDecodeRequest() {
	req, err := jobs.DecodeRequest([]byte(`{
		"request_id": "req-7f3a9c",
		"name": "worker-node-02",
		"plan": "standard-8",
		"region": "eu-west-1",
		"image": "ubuntu-22.04",
		"ssh_keys": ["ssh_key_a1b2c3"],
		"metadata": {"team": "payments"}
	}`))
	fmt.Println(req.RequestID, req.Name, req.Plan, req.Region, req.Image, req.SSHKeys, req.Metadata, err)

	// A valid request_id but bad fields: the request fails with
	// INVALID_REQUEST, and the failed event echoes the metadata.
	req, err = jobs.DecodeRequest([]byte(`{"request_id":"req-7f3a9d","name":"","plan":8,"region":"eu-west-1","image":"debian-12","metadata":{"team":"payments"}}`))
	fmt.Println(err)
	var verr *jobs.ValidationError
	if errors.As(err, &verr) {
		fmt.Println(req.RequestID, req.Metadata, len(verr.Fields))
	}

	// No request_id: the message cannot be answered on a request's subject.
	_, err = jobs.DecodeRequest([]byte(`{"name":"worker-node-03"}`))
	fmt.Println(jobs.IsReject(err), err)

	// Output:
	// req-7f3a9c worker-node-02 standard-8 eu-west-1 ubuntu-22.04 [ssh_key_a1b2c3] map[team:payments] <nil>
	// invalid request: name: must not be empty; plan: must be a string
	// req-7f3a9d map[team:payments] 2
	// true reject message: request_id is missing
}

func ExampleSubjects() {
	var s jobs.Subjects // the zero value uses the prefix "provision"
	fmt.Println(s.Create())
	fmt.Println(s.Event(jobs.KindCompleted, "req-7f3a9c"))
	fmt.Println(s.EventsFor("req-7f3a9c"))

	ev := jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindCompleted}
	fmt.Println(ev.MsgID())

	// Output:
	// provision.requests.create
	// provision.events.completed.req-7f3a9c
	// provision.events.*.req-7f3a9c
	// req-7f3a9c.completed
}
