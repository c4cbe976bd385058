package jobs_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudnexus/provisioner/jobs"
)

// checkSameAsReference fails t unless DecodeRequest and the reference
// implementation (reference_test.go) give the same request and the same error:
// same type, same reason or field errors, nil and empty maps and slices told
// apart.
func checkSameAsReference(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := jobs.DecodeRequest(data)
	want, wantErr := decodeRequestReference(data)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DecodeRequest(%.300q):\nrequest   %#v\nreference %#v", data, got, want)
	}
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Errorf("DecodeRequest(%.300q):\nerror     %T %v\nreference %T %v", data, gotErr, gotErr, wantErr, wantErr)
	}
}

// TestDecodeRequestSameAsReferenceFixtures compares on every sample message.
func TestDecodeRequestSameAsReferenceFixtures(t *testing.T) {
	t.Parallel()
	n := 0
	err := filepath.WalkDir("../testdata/requests", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		t.Run(path, func(t *testing.T) { checkSameAsReference(t, data) })
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walked %d samples: %v", n, err)
	}
}

// diffValues are JSON values, well-formed or not, that each member of a
// request is set to in turn by TestDecodeRequestSameAsReference. They aim at
// the edges of DecodeRequest's fast paths for plain strings and their
// fallback to encoding/json.
var diffValues = []string{
	// Strings.
	`"a"`, `""`, `" "`, `" \t"`, `"\t"`, `"\n"`, `"\u0020"`, `"tp-000001"`, `"a\u002db"`,
	`"a\"b"`, `"a\\b"`, `"a\/b"`, `"\u00e9"`, `"é"`, `"\ud83d\ude00"`, `"😀"`, `"\ud800"`, `"\udc00x"`,
	`"\u0000"`, `"a\u0000b"`, `"\u2028\u2029"`, "\"\u2028\"", `"<&>"`, "\"\ufeff\"", `"\uFFFD"`, "\"\uFFFD\"",
	"\"\xff\"", "\"a\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xe2\x82\"", "\"\xf4\x90\x80\x80\"",
	"\"a\tb\"", "\"a\nb\"", "\"\x00\"", "\"\x7f\"",
	`"` + strings.Repeat("x", jobs.MaxFieldLength) + `"`, `"` + strings.Repeat("x", jobs.MaxFieldLength+1) + `"`,
	`"` + strings.Repeat("é", 128) + `"`, `"` + strings.Repeat("k", jobs.MaxSSHKeyLength+1) + `"`,
	`"` + strings.Repeat("a", 64) + `"`, `"` + strings.Repeat("a", 65) + `"`,
	// Not strings.
	`null`, `nul`, `true`, `false`, `0`, `-0`, `1e999`, `-1e-999`, `123456789012345678901234567890`, `01`, `1.`, `NaN`,
	`{}`, `{ }`, `[]`, `[ ]`, `[""]`, `[" "]`, `["a"]`, `[ "a" , "b" ]`, "[\n\"a\"\r,\t\"b\"\n]", `["a",]`, `["a" "b"]`,
	`[null]`, `[null,"a"]`, `["a",null]`, `[1]`, `["a",1]`, `[["a"]]`, `[{}]`, `["a\u0000"]`, "[\"\xff\"]", `["\ud800"]`, `["a\"b"]`,
	`{"k":"v"}`, `{ "k" : "v" }`, "{\n\"k\"\t:\r\"v\"\n}", `{"k":"v",}`, `{"k":"v" "l":"w"}`, `{"k"}`,
	`{"k":null}`, `{"k":"v","k":null}`, `{"k":null,"k":"v"}`, `{"k":"","k":"v"}`, `{"k":"v","k":""}`, `{"":""}`,
	`{"k":1}`, `{"k":{}}`, `{"k":[]}`, `{"k":true}`, `{"k":"v","l":1e999}`,
	`{"K":"a","k":"b"}`, `{"a\u0000":"b"}`, `{"\u00e9":"\u00e9"}`, "{\"\xff\":\"v\"}", "{\"k\":\"\xff\"}", `{"k\"":"v"}`, `{"\ud800":"v"}`,
	`{"k":"` + strings.Repeat("v", jobs.MaxMetadataValue+1) + `"}`, `{"` + strings.Repeat("k", jobs.MaxFieldLength+1) + `":"v"}`,
	`{"a":{"b":[1,{"c":null}]},"d":[[[]]]}`, `[[[[[[[[[[]]]]]]]]]]`,
	// Bytes that are not JSON.
	``, ` `, `"`, `"a`, `[`, `{`, `}`, `]`, `'a'`, `a`, "\"a\x01\"", "\f\"a\"", "\u00a0\"a\"",
}

// diffMessages are whole messages for TestDecodeRequestSameAsReference.
func diffMessages() []string {
	const typical = `{"request_id":"tp-000001","name":"vm-tp-000001","plan":"standard-4","region":"us-east-1","image":"ubuntu-22.04","ssh_keys":["ssh_key_bench"],"metadata":{"team":"bench"}}`
	const body = `"name":"n","plan":"p","region":"r","image":"i"`
	msgs := []string{
		typical,
		// Roots that are not an object, or not alone.
		``, ` `, "\n\t\r ", `null`, ` null `, `true`, `0`, `1e999`, `"s"`, `"{}"`, `[]`, `[{}]`, `{`, `}`, `]`, `{}`, ` {} `,
		`{"request_id":"a"}`, `nul`, "\ufeff{}", "\ufeff" + typical, "\x00" + typical, "\f" + typical,
		typical + `}`, typical + `]`, typical + ` x`, typical + "\nnull", typical + typical, typical + ` {}`, typical + ` {`,
		typical + ` [`, typical + `,`, typical + `"`, typical + "\x00", typical + "\f", typical + " \n\t\r", "\n\t\r " + typical,
		typical[:len(typical)-1], typical[:len(typical)-1] + `,}`, `[1] {`, `{} [`, `{}}`, `{}{`, `null {}`, `{"a":1}]`,
		`{"request_id":"a",` + body + `} /* comment */`, `{"request_id":"a",` + body + `}` + "\u00a0",
		// Duplicate keys: the last one wins.
		`{"request_id":"a","request_id":"b",` + body + `}`,
		`{"request_id":"a.b","request_id":"b",` + body + `}`,
		`{"request_id":"a","request_id":"b.c",` + body + `}`,
		`{"request_id":"a","request_id":null,` + body + `}`,
		`{"request_id":"a",` + body + `,"name":1}`,
		`{"request_id":"a",` + body + `,"name":null}`,
		`{"request_id":"a","name":1,` + body + `}`,
		`{"request_id":"a",` + body + `,"ssh_keys":["a"],"ssh_keys":null}`,
		`{"request_id":"a",` + body + `,"ssh_keys":1,"ssh_keys":["a"]}`,
		`{"request_id":"a",` + body + `,"metadata":{"k":"v"},"metadata":{"k":null}}`,
		`{"request_id":"a",` + body + `,"metadata":{"k":null},"metadata":{"k":"v"}}`,
		// Keys in another case or spelling: unknown, unless they decode to the very name.
		`{"Request_ID":"a",` + body + `}`,
		`{"REQUEST_ID":"a","request_id":"b",` + body + `}`,
		`{"request_id":"a","request_id":"b","Request_id":"c",` + body + `}`,
		`{"request_id":"a","Name":"N","NAME":"M",` + body + `}`,
		`{"request_id":"a",` + body + `,"Name":"N"}`,
		`{"request_id":"a","Name":"N","Plan":"P","Region":"R","Image":"I"}`,
		`{"request_id":"a",` + body + `,"SSH_KEYS":["a"],"Metadata":{"k":"v"}}`,
		`{"request_id":"a",` + body + `,"ssh_\u212Aeys":["a"],"\u017Fsh_keys":["b"]}`,
		"{\"request_id\":\"a\"," + body + ",\"ssh_\u212Aeys\":[\"a\"],\"\u017Fsh_keys\":[\"b\"]}",
		`{"request_\u0069d":"a","na\u006de":"n","plan":"p","region":"r","image":"i"}`,
		`{"request_id\u0000":"a",` + body + `}`,
		`{" request_id":"a",` + body + `}`,
		// White space everywhere it may be.
		" {\n\t\"request_id\" :\r\"a\" ,\n \"name\"\t: \"n\" , \"plan\":\"p\",\"region\":\"r\",\"image\":\"i\" ,\n\"ssh_keys\" : [ \"k1\" ,\n\"k2\" ] , \"metadata\" : { \"a\" : \"b\" ,\r\n \"c\":\"d\" } } \n",
		// Nested junk in unknown members.
		`{"request_id":"a",` + body + `,"x":{"y":[1,2,{"z":null,"w":[true,false,"s\u0000"]}]},"y":[[[[]]]],"z":1e400}`,
		`{"request_id":"a",` + body + `,"x":` + strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000) + `}`,
		`{"request_id":"a",` + body + `,"x":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
		`{"request_id":"a",` + body + `,"metadata":` + strings.Repeat(`{"k":`, 50) + `"v"` + strings.Repeat(`}`, 50) + `}`,
		// Everything wrong at once, in every order.
		`{"request_id":"a","name":null,"plan":"","region":" ","image":1,"ssh_keys":["",null,"` + strings.Repeat("k", jobs.MaxSSHKeyLength+1) + `"],"metadata":{"k":null}}`,
		`{"metadata":[],"ssh_keys":{},"image":[],"region":{},"plan":true,"name":0,"request_id":"z"}`,
		`{"request_id":"a"}`, `{"request_id":""}`, `{"name":"n"}`,
	}

	// Many keys.
	var keys, meta, escapedMeta strings.Builder
	for i := range jobs.MaxSSHKeys + 1 {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&keys, `%s"k%d"`, sep, i)
		fmt.Fprintf(&meta, `%s"k%d":"v"`, sep, i)
		fmt.Fprintf(&escapedMeta, `%s"k\u00%02x":"v"`, sep, i+0x30)
	}
	msgs = append(msgs,
		`{"request_id":"a",`+body+`,"ssh_keys":[`+keys.String()+`],"metadata":{`+meta.String()+`}}`,
		`{"request_id":"a",`+body+`,"ssh_keys":[`+keys.String()+`,"x"],"metadata":{`+escapedMeta.String()+`}}`)

	// Each member set to each value, in a message otherwise valid.
	members := map[string]string{
		"request_id": `"req-1"`, "name": `"n"`, "plan": `"p"`, "region": `"r"`, "image": `"i"`,
		"ssh_keys": `["k"]`, "metadata": `{"team":"t"}`,
	}
	names := []string{"request_id", "name", "plan", "region", "image", "ssh_keys", "metadata"}
	for _, member := range names {
		for _, v := range diffValues {
			var b strings.Builder
			b.WriteByte('{')
			for i, n := range names {
				if i > 0 {
					b.WriteByte(',')
				}
				val := members[n]
				if n == member {
					val = v
				}
				fmt.Fprintf(&b, "%q:%s", n, val)
			}
			b.WriteByte('}')
			msgs = append(msgs, b.String())
		}
	}
	return msgs
}

// TestDecodeRequestSameAsReference compares DecodeRequest with the reference
// implementation on edge cases, and on them made oversized.
func TestDecodeRequestSameAsReference(t *testing.T) {
	t.Parallel()
	for _, msg := range diffMessages() {
		checkSameAsReference(t, []byte(msg))
		// Oversized: only the request_id is looked at, and the reasons differ.
		if len(msg) <= jobs.MaxRequestSize {
			checkSameAsReference(t, []byte(msg+strings.Repeat(" ", jobs.MaxRequestSize+1-len(msg))))
		}
	}
	for _, size := range []int{jobs.MaxRequestSize, jobs.MaxRequestSize + 1} {
		for _, pad := range []string{" ", "x", "}"} {
			msg := `{"request_id":"a","name":"n","plan":"p","region":"r","image":"i"}`
			checkSameAsReference(t, []byte(msg[:len(msg)-1]+strings.Repeat(" ", size-len(msg)-len(pad)+1)+pad))
		}
	}
}

// TestValidRequestIDSameAsPattern compares ValidRequestID with the regular
// expression it documents.
func TestValidRequestIDSameAsPattern(t *testing.T) {
	t.Parallel()
	ids := []string{"", "\n", "a\n", "\na", "a\x00", "é", "aé", "\xff", "a-b_C9", strings.Repeat("a", 64), strings.Repeat("a", 65)}
	for c := range 256 {
		ids = append(ids, string(rune(c)), "a"+string([]byte{byte(c)}), string([]byte{byte(c)}), strings.Repeat("Z", 63)+string([]byte{byte(c)}))
	}
	for n := range 70 {
		ids = append(ids, strings.Repeat("_", n), strings.Repeat("-", n)+"\n")
	}
	for _, id := range ids {
		if got, want := jobs.ValidRequestID(id), referenceValidRequestID(id); got != want {
			t.Errorf("ValidRequestID(%q) = %v, the pattern says %v", id, got, want)
		}
	}
}
