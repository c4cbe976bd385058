package apiclient

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestAppendJSONSameAsEncodingJSON: the appenders write what json.Marshal
// writes, with every field set (by reflection, so a new field not taught to
// the appender fails here) and with none.
func TestAppendJSONSameAsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 30, 15, 120000000, time.UTC)
	fill := func(v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), v.Type().Field(i).Name
			switch f.Interface().(type) {
			case string:
				f.SetString(name + " <&> \"é\"")
			case []string:
				f.Set(reflect.ValueOf([]string{"ssh-ed25519 AAAA", "k\n2"}))
			case *time.Time:
				f.Set(reflect.ValueOf(&at))
			default:
				t.Fatalf("field %s of type %s: teach this test and the appender about it", name, f.Type())
			}
		}
	}
	var in Instance
	fill(reflect.ValueOf(&in).Elem())
	var req CreateInstanceRequest
	fill(reflect.ValueOf(&req).Elem())
	for name, c := range map[string]struct {
		v   any
		got []byte
	}{
		"instance, every field":  {&in, in.AppendJSON(nil)},
		"instance, no field":     {&Instance{}, (&Instance{}).AppendJSON(nil)},
		"create, every field":    {&req, req.appendJSON(nil)},
		"create, no field":       {&CreateInstanceRequest{}, (&CreateInstanceRequest{}).appendJSON(nil)},
		"create, empty ssh_keys": {&CreateInstanceRequest{SSHKeys: []string{}}, (&CreateInstanceRequest{SSHKeys: []string{}}).appendJSON(nil)},
	} {
		want, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(c.got) != string(want) {
			t.Errorf("%s: got\n%s\nwant (encoding/json)\n%s", name, c.got, want)
		}
	}
}
