package plainjson

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// object collects what Object hands over, the last of duplicate keys
// winning; nil when Object declines.
func object(data []byte) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if !Object(data, func(key, value []byte) bool {
		out[string(key)] = bytes.Clone(value)
		return true
	}) {
		return nil
	}
	return out
}

func rawEqual(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

func TestObject(t *testing.T) {
	accepted := []struct {
		in   string
		want map[string]json.RawMessage
	}{
		{`{}`, map[string]json.RawMessage{}},
		{" \t\r\n{ } \n", map[string]json.RawMessage{}},
		{`{"a":"x","b":null,"c":true,"d":false}`, map[string]json.RawMessage{"a": json.RawMessage(`"x"`), "b": json.RawMessage(`null`), "c": json.RawMessage(`true`), "d": json.RawMessage(`false`)}},
		{`{ "a" : [ "x" , "y" ] , "b" : { "k" : "v" } , "c":[],"d":{} }`, map[string]json.RawMessage{"a": json.RawMessage(`[ "x" , "y" ]`), "b": json.RawMessage(`{ "k" : "v" }`), "c": json.RawMessage(`[]`), "d": json.RawMessage(`{}`)}},
		{`{"a":"1","a":"2"}`, map[string]json.RawMessage{"a": json.RawMessage(`"2"`)}},
		{`{"ключ":"значение"}`, map[string]json.RawMessage{"ключ": json.RawMessage(`"значение"`)}},
	}
	for _, tc := range accepted {
		got := object([]byte(tc.in))
		if got == nil || !maps.EqualFunc(got, tc.want, rawEqual) {
			t.Errorf("Object(%s) = %q, want %q", tc.in, got, tc.want)
		}
		var ref map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.in), &ref); err != nil || !maps.EqualFunc(got, ref, rawEqual) {
			t.Errorf("Object(%s) = %q; encoding/json gives %q, %v", tc.in, got, ref, err)
		}
	}

	declined := []string{
		// not an object, or not well-formed
		``, `null`, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":"x",}`, `{"a":"x"} x`, `{"a":"x"}{}`,
		`{"a":nul}`, `{"a":nullx}`, `{"a":True}`, `{'a':"x"}`, `{"a":"x" "b":"y"}`,
		`{"a":["x",]}`, `{"a":["x" "y"]}`, `{"a":{"b":"x",}}`,
		// numbers, escapes, invalid UTF-8 (which encoding/json replaces), a control character
		`{"a":1}`, `{"a":"x\"y"}`, `{"a\n":"x"}`, `{"a":"` + "\xff" + `"}`, "{\"a\":\"\x01\"}",
		// deeper, or other than strings one level down
		`{"a":[["x"]]}`, `{"a":{"b":{}}}`, `{"a":[null]}`, `{"a":{"b":null}}`,
	}
	for _, in := range declined {
		if got := object([]byte(in)); got != nil {
			t.Errorf("Object(%q) accepted it as %q; want it left to encoding/json", in, got)
		}
	}

	// Nesting stops a level down, however deep the input goes.
	deep := strings.Repeat(`{"a":`, 100000) + `"x"` + strings.Repeat(`}`, 100000)
	if object([]byte(deep)) != nil {
		t.Error("Object accepted 100,000 nested objects")
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`[]`, []string{}},
		{`[ "a" ,"b",""]`, []string{"a", "b", ""}},
		{`["é"]`, []string{"é"}},
	} {
		got, end, ok := StringArray([]byte(tc.in), 0)
		if !ok || end != len(tc.in) || !slices.Equal(got, tc.want) || got == nil {
			t.Errorf("StringArray(%s) = %q, %d, %v; want %q, %d, true", tc.in, got, end, ok, tc.want, len(tc.in))
		}
	}
	for _, in := range []string{`[`, `[1]`, `["a",]`, `["\u0041"]`, `[null]`, `{}`} {
		if got, _, ok := StringArray([]byte(in), 0); ok {
			t.Errorf("StringArray(%s) accepted it as %q", in, got)
		}
	}
	md, end, ok := StringObject([]byte(`{"k":"v", "k":"w","":""} `), 0)
	if !ok || end != 24 || !maps.Equal(md, map[string]string{"k": "w", "": ""}) {
		t.Errorf("StringObject = %q, %d, %v", md, end, ok)
	}
	if md, _, ok := StringObject([]byte(`{"k":null}`), 0); ok {
		t.Errorf("StringObject accepted a null value as %q", md)
	}
	if s, end, ok := String([]byte(`x"abc"y`), 1); !ok || s != "abc" || end != 6 {
		t.Errorf(`String = %q, %d, %v; want "abc", 6, true`, s, end, ok)
	}
}

// FuzzPlainJSON checks every reader against encoding/json: whatever a reader
// accepts, encoding/json must decode to the same.
func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"x","b":[" y"],"c":{"k":"v"},"d":null,"e":true}`, `["a","b"]`, `"x"`,
		`{"a":"x","a":"y"}`, `{"a":1}`, `{"a":"\u00e9"}`, `{"A":"x","a":"y"}`, "{\"a\":\"\xc3\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got := object(data); got != nil {
			var ref map[string]json.RawMessage
			if err := json.Unmarshal(data, &ref); err != nil || ref == nil || !maps.EqualFunc(got, ref, rawEqual) {
				t.Fatalf("Object(%q) = %q; encoding/json gives %q, %v", data, got, ref, err)
			}
		}
		i := SkipSpace(data, 0)
		if got, end, ok := StringArray(data, i); ok && Whole(data, end) {
			var ref []string
			if err := json.Unmarshal(data, &ref); err != nil || !slices.Equal(got, ref) {
				t.Fatalf("StringArray(%q) = %q; encoding/json gives %q, %v", data, got, ref, err)
			}
		}
		if got, end, ok := StringObject(data, i); ok && Whole(data, end) {
			var ref map[string]string
			if err := json.Unmarshal(data, &ref); err != nil || !maps.Equal(got, ref) {
				t.Fatalf("StringObject(%q) = %q; encoding/json gives %q, %v", data, got, ref, err)
			}
		}
		if got, end, ok := String(data, i); ok && Whole(data, end) {
			var ref string
			if err := json.Unmarshal(data, &ref); err != nil || got != ref {
				t.Fatalf("String(%q) = %q; encoding/json gives %q, %v", data, got, ref, err)
			}
		}
	})
}

func TestFoldsTo(t *testing.T) {
	names := []string{"name", "ssh_keys"}
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"Name", true}, {"NAME", true}, {"SSH_Keys", true},
		{"ſsh_keys", true}, // not ASCII: encoding/json may fold it (ſ to s)
		{"é", true},
		{"names", false}, {"nam", false}, {"image", false}, {"", false}, {"ssh-keys", false},
	} {
		if got := FoldsTo([]byte(c.key), names); got != c.want {
			t.Errorf("FoldsTo(%q) = %v, want %v", c.key, got, c.want)
		}
	}
}

func TestSetString(t *testing.T) {
	for _, c := range []struct {
		value string
		want  string
		ok    bool
	}{
		{`"web-1"`, "web-1", true},
		{`""`, "", true},
		{`null`, "before", true}, // left as it was, as encoding/json leaves it
		{`true`, "before", false},
		{`["a"]`, "before", false},
		{`{"a":"b"}`, "before", false},
		{``, "before", false},
	} {
		s := "before"
		if ok := SetString(&s, []byte(c.value)); ok != c.ok || s != c.want {
			t.Errorf("SetString(%s) = %q, %v; want %q, %v", c.value, s, ok, c.want, c.ok)
		}
	}
}
