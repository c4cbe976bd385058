package schema_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/schema"
)

const asyncAPIFile = "../../docs/asyncapi.yaml"

// asyncAPI is the parsed AsyncAPI document, as generic JSON values.
type asyncAPI struct {
	doc map[string]any
}

func loadAsyncAPI(t *testing.T) asyncAPI {
	t.Helper()
	data, err := os.ReadFile(asyncAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s is not YAML: %v", asyncAPIFile, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatalf("%s: %v", asyncAPIFile, err)
	}
	return asyncAPI{doc: doc}
}

// pointer resolves a JSON pointer ("/a/b") in v.
func pointer(v any, ptr string) (any, bool) {
	if ptr == "" {
		return v, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return v, true
}

// local resolves a reference inside the document, following a chain of them.
func (a asyncAPI) local(t *testing.T, v any) map[string]any {
	t.Helper()
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		if !strings.HasPrefix(ref, "#") {
			t.Fatalf("$ref %s is not local", ref)
		}
		if v, ok = pointer(a.doc, strings.TrimPrefix(ref, "#")); !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
	}
	t.Fatal("$ref chain too long")
	return nil
}

// refs returns every $ref in v.
func refs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"].(string); ok {
			out = append(out, r)
		}
		for _, c := range v {
			out = append(out, refs(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, refs(c)...)
		}
	}
	return out
}

// TestAsyncAPIDocument checks that docs/asyncapi.yaml is an AsyncAPI 3
// document whose every reference resolves: local ones in the document, file
// ones to the schema files this package embeds.
func TestAsyncAPIDocument(t *testing.T) {
	a := loadAsyncAPI(t)
	if v, _ := a.doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("asyncapi: %q, want 3.x", v)
	}
	for _, key := range []string{"info", "channels", "operations", "components"} {
		if _, ok := a.doc[key].(map[string]any); !ok {
			t.Errorf("no %s", key)
		}
	}
	all := refs(a.doc)
	if len(all) < 20 {
		t.Fatalf("found %d $refs, expected the document's", len(all))
	}
	for _, ref := range all {
		file, frag, _ := strings.Cut(ref, "#")
		if file == "" {
			if _, ok := pointer(a.doc, frag); !ok {
				t.Errorf("$ref %s does not resolve in the document", ref)
			}
			continue
		}
		onDisk := filepath.Join(filepath.Dir(asyncAPIFile), filepath.FromSlash(file))
		data, err := os.ReadFile(onDisk)
		if err != nil {
			t.Errorf("$ref %s: %v", ref, err)
			continue
		}
		// The file must be the embedded schema, not a copy that may drift.
		abs, _ := filepath.Abs(onDisk)
		here, _ := filepath.Abs(".")
		if filepath.Dir(abs) != here {
			t.Errorf("$ref %s: not a file of jobs/schema", ref)
			continue
		}
		embedded, err := fs.ReadFile(schema.FS(), path.Base(file))
		if err != nil || !bytes.Equal(data, embedded) {
			t.Errorf("$ref %s: not an embedded schema (%v)", ref, err)
			continue
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Errorf("$ref %s: %v", ref, err)
			continue
		}
		if _, ok := pointer(doc, frag); !ok {
			t.Errorf("$ref %s: fragment does not resolve", ref)
		}
	}
}

var paramPattern = regexp.MustCompile(`\{([^}]+)\}`)

// channelMessage returns a channel's one message.
func (a asyncAPI) channelMessage(t *testing.T, ch map[string]any) map[string]any {
	t.Helper()
	msgs, _ := ch["messages"].(map[string]any)
	if len(msgs) != 1 {
		t.Fatalf("channel %v has %d messages, want 1", ch["address"], len(msgs))
	}
	for _, m := range msgs {
		return a.local(t, m)
	}
	return nil
}

// payloadFile returns the name of the schema file a message's payload refers to.
func payloadFile(msg map[string]any) string {
	p, _ := msg["payload"].(map[string]any)
	sch, _ := p["schema"].(map[string]any)
	ref, _ := sch["$ref"].(string)
	return path.Base(ref)
}

// TestAsyncAPIChannels checks the channels and operations against the code:
// the create channel's address is jobs.Subjects.Create, each event kind has
// a channel whose address is jobs.Subjects.Event with its parameter, whose
// message is described by that kind's schema, and the worker receives on
// the first and sends on the others.
func TestAsyncAPIChannels(t *testing.T) {
	a := loadAsyncAPI(t)
	var subj jobs.Subjects
	channels := a.doc["channels"].(map[string]any)

	want := map[string]string{schema.RequestFile: subj.Create()} // payload file -> address with req-1
	kinds := []jobs.Kind{jobs.KindCreated, jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected}
	for _, k := range kinds {
		want[schema.EventFile(k)] = subj.Event(k, "req-1")
	}
	action := map[string]string{} // channel id -> wanted action
	found := map[string]bool{}
	for id, v := range channels {
		ch := a.local(t, v)
		addr, _ := ch["address"].(string)
		params, _ := ch["parameters"].(map[string]any)
		names := paramPattern.FindAllStringSubmatch(addr, -1)
		if len(names) != len(params) {
			t.Errorf("channel %s: address %s has %d parameters, %d declared", id, addr, len(names), len(params))
		}
		for _, n := range names {
			if _, ok := params[n[1]]; !ok {
				t.Errorf("channel %s: parameter %s not declared", id, n[1])
			}
		}
		file := payloadFile(a.channelMessage(t, ch))
		wantAddr, ok := want[file]
		if !ok {
			t.Errorf("channel %s: payload %q is not a schema of this package", id, file)
			continue
		}
		found[file] = true
		if got := paramPattern.ReplaceAllString(addr, "req-1"); got != wantAddr {
			t.Errorf("channel %s: address %s gives %s, want %s", id, addr, got, wantAddr)
		}
		action[id] = "send"
		if file == schema.RequestFile {
			action[id] = "receive"
		}
	}
	for file := range want {
		if !found[file] {
			t.Errorf("no channel carries %s", file)
		}
	}

	ops := a.doc["operations"].(map[string]any)
	operated := map[string]bool{}
	for id, v := range ops {
		op := a.local(t, v)
		ref, _ := op["channel"].(map[string]any)["$ref"].(string)
		chID := strings.TrimPrefix(ref, "#/channels/")
		if op["action"] != action[chID] {
			t.Errorf("operation %s: action %v on channel %s, want %s", id, op["action"], chID, action[chID])
		}
		operated[chID] = true
		list, _ := op["messages"].([]any)
		for _, m := range list {
			r, _ := m.(map[string]any)["$ref"].(string)
			if !strings.HasPrefix(r, ref+"/messages/") {
				t.Errorf("operation %s: message %s is not one of channel %s", id, r, chID)
			}
		}
	}
	for id := range channels {
		if !operated[id] {
			t.Errorf("no operation on channel %s", id)
		}
	}
}

// TestAsyncAPIExamples validates every message example: its payload against
// the schema, its headers against what the worker sets.
func TestAsyncAPIExamples(t *testing.T) {
	a := loadAsyncAPI(t)
	msgs := a.doc["components"].(map[string]any)["messages"].(map[string]any)
	n := 0
	for id, v := range msgs {
		msg := a.local(t, v)
		file := payloadFile(msg)
		headerSchema := a.local(t, msg["headers"])
		required, _ := headerSchema["required"].([]any)
		examples, _ := msg["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no example", id)
		}
		for _, e := range examples {
			n++
			ex := e.(map[string]any)
			payload, err := json.Marshal(ex["payload"])
			if err != nil {
				t.Fatal(err)
			}
			headers := map[string]string{}
			for k, v := range ex["headers"].(map[string]any) {
				headers[k], _ = v.(string)
			}
			for _, r := range required {
				if _, ok := headers[r.(string)]; !ok {
					t.Errorf("message %s, example %v: no header %s", id, ex["name"], r)
				}
			}
			if file == schema.RequestFile {
				if err := schema.ValidateRequest(payload); err != nil {
					t.Errorf("message %s, example %v: %v", id, ex["name"], err)
				}
				var req jobs.Request
				_ = json.Unmarshal(payload, &req)
				if headers["Nats-Msg-Id"] != req.RequestID {
					t.Errorf("message %s, example %v: Nats-Msg-Id %s, want %s", id, ex["name"], headers["Nats-Msg-Id"], req.RequestID)
				}
				continue
			}
			if err := schema.ValidateEvent(payload); err != nil {
				t.Errorf("message %s, example %v: %v", id, ex["name"], err)
			}
			var ev jobs.Event
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatal(err)
			}
			if file != schema.EventFile(ev.Kind) {
				t.Errorf("message %s, example %v: a %s event under %s", id, ex["name"], ev.Kind, file)
			}
			wantHeaders := map[string]string{
				"Nats-Msg-Id": ev.MsgID(), "ce-id": ev.MsgID(), "ce-type": jobs.CloudEventType(ev.Kind),
				"ce-source": jobs.CloudEventSource, "ce-subject": ev.RequestID, "ce-specversion": "1.0",
				"content-type": "application/json",
			}
			for k, want := range wantHeaders {
				if headers[k] != want {
					t.Errorf("message %s, example %v: header %s %q, want %q", id, ex["name"], k, headers[k], want)
				}
			}
		}
	}
	if n < 5 || len(msgs) != 5 {
		t.Errorf("%d examples in %d messages, want one message per channel and an example each", n, len(msgs))
	}
}
