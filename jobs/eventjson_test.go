package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// fillAll sets every field of the struct v points to, recursing into
// pointers to structs, so that a field added to Event, Instance or
// EventError and not to AppendJSON fails the comparison below.
func fillAll(t *testing.T, v reflect.Value, seed int) {
	t.Helper()
	at := time.Date(2026, 11, 26, 9, 30, 15, 123456789, time.UTC)
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString(name + "-value")
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(seed + i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(seed + i + 1))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"team": "platform", "cost<center>": "a&b", "": "empty key"}))
		case reflect.Slice: // json.RawMessage
			f.Set(reflect.ValueOf(json.RawMessage(` [ {"field": "name", "reason": "<required>"} ] `)))
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			switch p.Interface().(type) {
			case *bool:
				p.Elem().SetBool(true)
			case *time.Time:
				p.Elem().Set(reflect.ValueOf(at.Add(time.Minute)))
			default:
				fillAll(t, p.Elem(), seed+10*i)
			}
			f.Set(p)
		case reflect.Struct:
			if f.Type() != reflect.TypeFor[time.Time]() {
				t.Fatalf("field %s of type %s: teach this test and AppendJSON about it", name, f.Type())
			}
			f.Set(reflect.ValueOf(at))
		default:
			t.Fatalf("field %s of kind %s: teach this test and AppendJSON about it", name, f.Kind())
		}
	}
}

// TestEventAppendJSON checks that Event.AppendJSON writes exactly what
// json.Marshal writes, for events of every kind the worker makes, an event
// with every field set and one with none.
func TestEventAppendJSON(t *testing.T) {
	var full Event
	fillAll(t, reflect.ValueOf(&full).Elem(), 0)
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	created := NewEvent(KindCreated, "req-1", map[string]string{"team": "x"}, at)
	created.Instance = &apiclient.Instance{ID: "inst_1", Name: "vm-1", Status: "pending", Region: "eu-west-1", Plan: "standard-4"}
	completed := NewEvent(KindCompleted, "req-1", nil, at)
	completed.Instance = &apiclient.Instance{ID: "inst_1", Name: "vm \"1\" é", Status: "running", Region: "eu-west-1", Plan: "standard-4",
		Image: "debian-12", IPv4: "10.0.0.1", CreatedAt: &at}
	completed.DurationMS, completed.APICalls = 61234, 4
	deleted := false
	failed := NewEvent(KindFailed, "req-2", map[string]string{"a": "1"}, at.In(time.FixedZone("CET", 3600)))
	failed.Error = &EventError{Code: CodeInstanceFailed, Message: "instance inst_2 is error", HTTPStatus: 400}
	failed.InstanceID, failed.InstanceDeleted = "inst_2", &deleted
	rejected := NewEvent(KindRejected, "", nil, at)
	rejected.Error = &EventError{Code: CodeMalformedMessage, Message: "message is not a JSON object"}
	rejected.StreamSequence = 17
	for name, ev := range map[string]*Event{
		"every field": &full, "no field": {}, "created": created, "completed": completed, "failed": failed, "rejected": rejected,
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ev.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("AppendJSON =\n%s\nwant (encoding/json)\n%s", got, want)
			}
		})
	}
	bad := NewEvent(KindFailed, "req-3", nil, at)
	bad.Error = &EventError{Code: "X", Message: "m", Details: json.RawMessage(`{"unterminated`)}
	if _, err := json.Marshal(bad); err == nil {
		t.Fatal("json.Marshal accepted invalid details")
	}
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Error("AppendJSON accepted invalid details, json.Marshal does not")
	}
}

// TestFingerprintIsHashOfJSON: a fingerprint is the SHA-256 of the request
// as json.Marshal writes it (stored records hold fingerprints made so).
func TestFingerprintIsHashOfJSON(t *testing.T) {
	var full Request
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + " <&> é")
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"ssh-ed25519 AAAA", "key \"2\""}))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"z": "last", "a": "first"}))
		default:
			t.Fatalf("Request.%s of kind %s: teach this test and appendRequestJSON about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	for name, r := range map[string]Request{
		"every field": full,
		"minimal":     {RequestID: "r", Name: "n", Plan: "p", Region: "g", Image: "i"},
		"empty lists": {RequestID: "r", SSHKeys: []string{}, Metadata: map[string]string{}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			if got, want := r.Fingerprint(), hex.EncodeToString(sum[:]); got != want {
				t.Errorf("Fingerprint = %s, want %s (SHA-256 of %s)", got, want, b)
			}
		})
	}
}
