package schema

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cloudnexus/provisioner/jobs"
)

//go:embed *.schema.json
var files embed.FS

// File names of the schemas, in FS and in this directory.
const (
	RequestFile = "request.schema.json"
	DefsFile    = "defs.schema.json"
)

// EventFile returns the name of the schema file of events of kind, or "" for
// an unknown kind.
func EventFile(kind jobs.Kind) string {
	switch kind {
	case jobs.KindCreated, jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected:
		return "event-" + string(kind) + ".schema.json"
	}
	return ""
}

// FS returns the schema files, to serve or copy them.
func FS() fs.FS { return files }

// base is the URL the embedded files are known by to the compiler; the
// schemas refer to each other relatively, so any base works.
const base = "file:///provisioner/jobs/schema/"

// set is the compiled schemas.
type set struct {
	request *jsonschema.Schema
	events  map[jobs.Kind]*jsonschema.Schema
}

// compiled compiles the embedded schemas once, on first use. It is the only
// package-level state, and it is never changed once built.
var compiled = sync.OnceValues(compile)

func compile() (*set, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// format is only an annotation in 2020-12 by default; the contract
	// promises RFC 3339 times, so check them.
	c.AssertFormat()
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if err := c.AddResource(base+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	s := &set{events: make(map[jobs.Kind]*jsonschema.Schema)}
	if s.request, err = c.Compile(base + RequestFile); err != nil {
		return nil, fmt.Errorf("compile %s: %w", RequestFile, err)
	}
	for _, kind := range []jobs.Kind{jobs.KindCreated, jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected} {
		sch, err := c.Compile(base + EventFile(kind))
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", EventFile(kind), err)
		}
		s.events[kind] = sch
	}
	return s, nil
}

// ValidateRequest checks a create request message against request.schema.json.
// It returns an error when data is not one JSON value, or a
// *jsonschema.ValidationError (wrapped) listing what does not match. It does
// not check the 64 KiB limit on the message.
func ValidateRequest(data []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("request is not JSON: %w", err)
	}
	if err := s.request.Validate(doc); err != nil {
		return fmt.Errorf("request does not match %s: %w", RequestFile, err)
	}
	return nil
}

// ValidateEvent checks an event against the schema of its kind. It returns
// an error when data is not a JSON object, its kind is not one of the four,
// or (wrapping a *jsonschema.ValidationError) it does not match the schema.
func ValidateEvent(data []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("event is not JSON: %w", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return errors.New("event is not a JSON object")
	}
	kind, _ := obj["kind"].(string)
	sch, ok := s.events[jobs.Kind(kind)]
	if !ok {
		return fmt.Errorf("event kind %q is not created, completed, failed or rejected", kind)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%s event does not match %s: %w", kind, EventFile(jobs.Kind(kind)), err)
	}
	return nil
}
