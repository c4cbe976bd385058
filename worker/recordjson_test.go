package worker

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestRecordMarshal checks that Record.appendJSON writes exactly what
// encoding/json writes, for a record with every field set (filled by
// reflection, so that a field added to Record and not to appendJSON fails
// here), with none set, and with strings that need escaping.
func TestRecordMarshal(t *testing.T) {
	full := Record{}
	v := reflect.ValueOf(&full).Elem()
	at := time.Date(2026, 11, 26, 9, 30, 15, 123456789, time.UTC)
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case string:
			f.SetString(v.Type().Field(i).Name + "-value")
		case time.Time:
			f.Set(reflect.ValueOf(at.Add(time.Duration(i) * time.Minute)))
		case json.RawMessage:
			f.Set(reflect.ValueOf(json.RawMessage(`{"kind":"created","n":` + string(rune('0'+i%10)) + `}`)))
		case uint64, int, int64:
			f.Set(reflect.ValueOf(int64(i + 1)).Convert(f.Type()))
		default:
			t.Fatalf("Record.%s has type %s: teach this test and Record.appendJSON about it", v.Type().Field(i).Name, f.Type())
		}
	}
	escaped := full
	escaped.LastError = "cloudnexus POST /instances: 503 <overloaded> & \"retry\"\n\t\u2028 é \xff"
	escaped.Owner = "host\\name/1"
	local := full
	local.StartedAt = at.In(time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"every field", full},
		{"no field", Record{}},
		{"strings to escape", escaped},
		{"time with a zone", local},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(&tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.rec.appendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("appendJSON =\n%s\nwant (encoding/json)\n%s", got, want)
			}
		})
	}
}
