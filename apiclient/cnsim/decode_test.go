package cnsim

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cloudnexus/provisioner/apiclient"
)

// sameCreateDecode fails t unless decodeCreate and json.Unmarshal agree on
// b: the same request, or errors of the same text.
func sameCreateDecode(t *testing.T, b []byte) {
	t.Helper()
	got, err := decodeCreate(b)
	var want apiclient.CreateInstanceRequest
	wantErr := json.Unmarshal(b, &want)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("decodeCreate(%q): error %v, json.Unmarshal %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeCreate(%q) = %#v, json.Unmarshal %#v", b, got, want)
	}
}

var createSamples = []string{
	`{"name":"web-1","plan":"standard-4","region":"eu-west-1","image":"ubuntu-24.04","ssh_keys":["ssh-ed25519 AAAA a@b"]}`,
	`{"name":"web-1","plan":"standard-4","region":"eu-west-1","image":"ubuntu-24.04"}`,
	`{ "name" : "web-1" , "ssh_keys" : [ ] }`,
	`{"name":"web-1","ssh_keys":null}`,
	`{"name":null,"plan":"p"}`,
	`{"name":"a","name":"b","ssh_keys":["x"],"ssh_keys":["y","z"]}`,
	`{"Name":"web-1"}`,
	`{"SSH_KEYS":["k"]}`,
	`{"ſsh_keys":["k"]}`,
	`{"name":"web-1","tags":["a"],"labels":{"k":"v"},"spot":true,"extra":null}`,
	`{"name":"web-\u0031"}`,
	`{"name":1}`,
	`{"name":true}`,
	`{"ssh_keys":"k"}`,
	`{"ssh_keys":[1]}`,
	`{"ssh_keys":{"a":"b"}}`,
	`{"size":4}`,
	"{\"name\":\"\xff\"}",
	`{}`, `null`, `[]`, `""`, `{"name":"a"} x`, `{"name":"a"`, ``,
}

func TestDecodeCreateSameAsEncodingJSON(t *testing.T) {
	for _, s := range createSamples {
		sameCreateDecode(t, []byte(s))
	}
	// The fast path takes what apiclient sends, with and without keys.
	for _, s := range createSamples[:2] {
		if _, ok := decodePlainCreate([]byte(s)); !ok {
			t.Errorf("decodePlainCreate refused %s", s)
		}
	}
}

func FuzzDecodeCreate(f *testing.F) {
	for _, s := range createSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameCreateDecode(t, b) })
}

func BenchmarkDecodeCreate(b *testing.B) {
	body := []byte(createSamples[0])
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCreate(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req apiclient.CreateInstanceRequest
			if err := json.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
