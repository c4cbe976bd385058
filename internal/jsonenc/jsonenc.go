// Package jsonenc appends JSON values exactly as encoding/json encodes them,
// for the few encoders on the worker's hot path that skip reflection: job
// records, events and request fingerprints. What is unusual (a string that
// needs escaping, raw JSON to check) is handed to encoding/json itself, so
// the output never differs from json.Marshal's; the callers' tests compare
// the two.
package jsonenc

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// String appends s as encoding/json encodes a string: plain printable ASCII
// at once, anything that needs escaping (control characters, quotes,
// backslashes, <, > and &, non-ASCII) by encoding/json.
func String(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Time appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted). MarshalJSON fails for a year outside [0, 9999];
// Time appends such a year all the same.
func Time(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Strings appends ss as encoding/json encodes a []string: null when nil.
func Strings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, s)
	}
	return append(b, ']')
}

// StringMap appends m as encoding/json encodes a map[string]string: keys in
// sorted order, null when nil.
func StringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = String(b, k)
		b = append(b, ':')
		b = String(b, m[k])
	}
	return append(b, '}')
}

// Int appends n.
func Int(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// Uint appends n.
func Uint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// Bool appends v.
func Bool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// Raw appends raw as encoding/json encodes a json.RawMessage field:
// compacted, with <, > and & escaped, or an error when it is not valid JSON.
func Raw(b []byte, raw json.RawMessage) ([]byte, error) {
	q, err := json.Marshal(raw)
	if err != nil {
		return b, err
	}
	return append(b, q...), nil
}
