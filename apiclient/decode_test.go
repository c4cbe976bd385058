package apiclient

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// decodeInstanceReference is decodeInstance as it was before its fast path:
// encoding/json alone. decodeInstance must give what it gives.
func decodeInstanceReference(b []byte) (*Instance, error) {
	var v struct {
		Instance
		Wrapped *Instance `json:"instance"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	inst := &v.Instance
	if v.Wrapped != nil {
		inst = v.Wrapped
	}
	if inst.ID == "" {
		return nil, errors.New("response has no instance id")
	}
	return inst, nil
}

// sameDecode fails t unless decodeInstance and the reference agree on b:
// the same instance, or errors of the same text.
func sameDecode(t *testing.T, b []byte) {
	t.Helper()
	got, err := decodeInstance(b)
	want, wantErr := decodeInstanceReference(b)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("decodeInstance(%q): error %v, reference %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeInstance(%q) = %+v, reference %+v", b, got, want)
	}
}

var instanceSamples = []string{
	`{"id":"inst_1","name":"web-1","status":"running","region":"eu-west-1","plan":"standard-4","image":"ubuntu-24.04","ipv4":"10.0.1.2","created_at":"2026-11-26T09:30:15.12Z"}`,
	`{"id":"inst_1","status":"pending","created_at":null,"ipv4":null,"tags":["a","b"],"labels":{"k":"v"},"ready":false}`,
	`{"instance":{"id":"inst_2","status":"running"}}`,
	`{"id":"inst_1","ID":"inst_2"}`,
	`{"id":"inst_1","Status":"running"}`,
	`{"id":"inst_1","ſtatus":"running"}`,
	`{"id":"inst_1","status":"a","status":"b","created_at":"2026-01-02T03:04:05+02:00","created_at":null}`,
	`{"id":"inst_1","created_at":"yesterday"}`,
	`{"id":"inst_1","created_at":true}`,
	`{"id":1}`,
	`{"id":true}`,
	`{"id":"inst_1","size":4}`,
	`{"id":"inst_\u0031"}`,
	`{"name":"web-1"}`,
	`{}`, `null`, `[]`, `{"id":"inst_1"} x`, `{"id":"inst_1"`,
}

func TestDecodeInstanceSameAsReference(t *testing.T) {
	for _, s := range instanceSamples {
		sameDecode(t, []byte(s))
	}
	// The fast path takes the simulator's and the documented shape.
	if _, ok := decodePlainInstance([]byte(instanceSamples[0])); !ok {
		t.Errorf("decodePlainInstance refused %s", instanceSamples[0])
	}
}

func FuzzDecodeInstance(f *testing.F) {
	for _, s := range instanceSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}

func BenchmarkDecodeInstance(b *testing.B) {
	body := []byte(instanceSamples[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeInstance(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeInstanceReference(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
