package jsonenc_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/internal/jsonenc"
)

// TestSameAsEncodingJSON compares every appender with json.Marshal.
func TestSameAsEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", "quote \" backslash \\", "<tag> & amp", "ctl \x00\x01\n\t", "é ü ✓", "bad \xff utf-8", "line\u2028sep"}
	check := func(name string, got []byte, v any) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: got %s, want %s", name, got, want)
		}
	}
	for _, s := range strs {
		check("String "+s, jsonenc.String([]byte{}, s), s)
	}
	check("Strings nil", jsonenc.Strings(nil, nil), []string(nil))
	check("Strings empty", jsonenc.Strings(nil, []string{}), []string{})
	check("Strings", jsonenc.Strings(nil, strs), strs)
	m := map[string]string{}
	for i, s := range strs {
		m[s] = strs[len(strs)-1-i]
	}
	check("StringMap nil", jsonenc.StringMap(nil, nil), map[string]string(nil))
	check("StringMap empty", jsonenc.StringMap(nil, map[string]string{}), map[string]string{})
	check("StringMap", jsonenc.StringMap(nil, m), m)
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 9, 30, 15, 123456789, time.UTC),
		time.Date(2026, 11, 26, 9, 30, 15, 0, time.UTC),
		time.Date(2026, 11, 26, 9, 30, 15, 120000000, time.FixedZone("CET", 3600)),
		{},
	} {
		check("Time "+tm.String(), jsonenc.Time(nil, tm), tm)
	}
	check("Int", jsonenc.Int(nil, -42), -42)
	check("Uint", jsonenc.Uint(nil, 18446744073709551615), uint64(18446744073709551615))
	check("Bool", jsonenc.Bool(nil, true), true)
	raw := json.RawMessage(" [ {\"field\" : \"name\", \"reason\": \"<b>&</b>\"} ] ")
	got, err := jsonenc.Raw(nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	check("Raw", got, raw)
	if _, err := jsonenc.Raw(nil, json.RawMessage("{not json")); err == nil {
		t.Error("Raw accepted invalid JSON")
	}
}
