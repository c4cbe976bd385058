package cnsim

import (
	"encoding/json"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/internal/plainjson"
)

// createKeys are the JSON names of apiclient.CreateInstanceRequest.
var createKeys = []string{"name", "plan", "region", "image", "ssh_keys"}

// decodeCreate decodes a create request's body exactly as json.Unmarshal
// into an apiclient.CreateInstanceRequest would, result and error alike. A
// body of plain members (package plainjson), what clients send, is read
// directly: `make bench` runs the simulator on the worker's machine, so its
// CPU counts against the worker, and a reflective decode was the largest
// part of its create handler. Anything else goes to json.Unmarshal.
func decodeCreate(body []byte) (apiclient.CreateInstanceRequest, error) {
	if req, ok := decodePlainCreate(body); ok {
		return req, nil
	}
	var req apiclient.CreateInstanceRequest
	err := json.Unmarshal(body, &req)
	return req, err
}

// decodePlainCreate reads a body of plain members into what json.Unmarshal
// would make of it, and reports false for anything it is not sure of: a key
// that encoding/json would match to a field only case-insensitively, a value
// of the wrong type or not plain. Unknown keys are skipped, as
// encoding/json skips them.
func decodePlainCreate(body []byte) (apiclient.CreateInstanceRequest, bool) {
	var req apiclient.CreateInstanceRequest
	ok := plainjson.Object(body, func(key, value []byte) bool {
		var dst *string
		switch string(key) {
		case "name":
			dst = &req.Name
		case "plan":
			dst = &req.Plan
		case "region":
			dst = &req.Region
		case "image":
			dst = &req.Image
		case "ssh_keys":
			if plainjson.IsNull(value) {
				req.SSHKeys = nil
				return true
			}
			keys, _, ok := plainjson.StringArray(value, 0)
			req.SSHKeys = keys
			return ok
		default:
			return !plainjson.FoldsTo(key, createKeys)
		}
		return plainjson.SetString(dst, value)
	})
	return req, ok
}
