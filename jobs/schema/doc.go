// Package schema holds the JSON Schemas (draft 2020-12) of the provisioner's
// messages, the machine-readable form of docs/CONTRACT.md: the create request
// and one schema per event kind, sharing defs.schema.json. Services in any
// language can validate against the files in this directory; Go code calls
// ValidateRequest and ValidateEvent, or reads the files from FS.
//
// The request schema accepts what jobs.DecodeRequest accepts, with the
// exceptions JSON Schema cannot express: the 64 KiB limit on the message,
// lengths counted in UTF-8 bytes rather than characters, and null metadata
// values, which the decoder takes for "" and the schema refuses.
//
// docs/asyncapi.yaml describes the subjects and refers to these files.
package schema
