// Package plainjson reads the plain shapes of JSON that nearly every message
// on the worker's hot path has (create requests, instances) without
// encoding/json: strings without escapes, null, true and false, and arrays
// and objects of such strings. What it accepts it decodes exactly as
// encoding/json would; on anything else (an escape, a number, invalid UTF-8,
// deeper nesting, a syntax error) a reader returns false and the caller hands
// the input to encoding/json, whose answer, or error, then stands. The
// callers' tests compare the two.
package plainjson

import (
	"bytes"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func SkipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String reads the plain JSON string that starts at data[i]: quoted, without
// escapes or control characters, valid UTF-8 inside. Its text is then
// exactly the bytes between the quotes, which is what encoding/json would
// give. It returns that text and the index after the closing quote, or false
// if data[i] does not start such a string (an escape, invalid UTF-8, which
// encoding/json turns into U+FFFD, or anything else).
func String(data []byte, i int) (s string, end int, ok bool) {
	text, end, ok := stringBytes(data, i)
	if !ok {
		return "", 0, false
	}
	return string(text), end, true
}

// stringBytes is String without the copy: text aliases data.
func stringBytes(data []byte, i int) (text []byte, end int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			body := data[i+1 : j]
			if !ascii && !utf8.Valid(body) {
				return nil, 0, false
			}
			return body, j + 1, true
		case c < 0x20 || c == '\\':
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false // no closing quote
}

// StringArray reads the array of plain strings (possibly empty, with JSON
// white space between the tokens) that starts at data[i], and returns the
// index after it. The result is never nil, as with encoding/json.
func StringArray(data []byte, i int) (out []string, end int, ok bool) {
	if i >= len(data) || data[i] != '[' {
		return nil, 0, false
	}
	out = []string{}
	if i = SkipSpace(data, i+1); i < len(data) && data[i] == ']' {
		return out, i + 1, true
	}
	for {
		s, end, ok := String(data, i)
		if !ok {
			return nil, 0, false
		}
		out = append(out, s)
		if i = SkipSpace(data, end); i >= len(data) {
			return nil, 0, false
		}
		switch data[i] {
		case ',':
			i = SkipSpace(data, i+1)
		case ']':
			return out, i + 1, true
		default:
			return nil, 0, false
		}
	}
}

// StringObject reads the object whose keys and values are all plain strings
// (possibly empty, with JSON white space between the tokens) that starts at
// data[i], and returns the index after it. Of duplicate keys the last one
// wins, as with encoding/json. The result is never nil.
func StringObject(data []byte, i int) (out map[string]string, end int, ok bool) {
	out = map[string]string{}
	end, ok = members(data, i, true, func(key, value []byte) bool {
		out[string(key)] = string(value[1 : len(value)-1])
		return true
	})
	if !ok {
		return nil, 0, false
	}
	return out, end, true
}

// Whole reports whether data from end on is only JSON white space: a reader
// that stopped at end consumed the whole input.
func Whole(data []byte, end int) bool { return SkipSpace(data, end) == len(data) }

// Object calls member with the key and the value of each member of the JSON
// object that is the whole of data (white space around it allowed), in
// order, and reports whether data is such an object with plain members: each
// key a plain string (key is its text) and each value a plain string, null,
// true, false, or an array or object of plain strings (value is its JSON
// text, without the white space around it). key and value alias data. When
// member returns false Object stops and returns false. A false answer can
// come after member was called for earlier members: the caller discards what
// it made of them.
func Object(data []byte, member func(key, value []byte) bool) bool {
	end, ok := members(data, SkipSpace(data, 0), false, member)
	return ok && Whole(data, end)
}

// members walks the object that starts at data[i], handing each key and the
// text of each value to member, and returns the index after the object. Its
// values are plain strings when stringsOnly, else any plain value (valueEnd):
// nesting stops one level down.
func members(data []byte, i int, stringsOnly bool, member func(key, value []byte) bool) (end int, ok bool) {
	if i >= len(data) || data[i] != '{' {
		return 0, false
	}
	if i = SkipSpace(data, i+1); i < len(data) && data[i] == '}' {
		return i + 1, true
	}
	for {
		key, end, ok := stringBytes(data, i)
		if !ok {
			return 0, false
		}
		if i = SkipSpace(data, end); i >= len(data) || data[i] != ':' {
			return 0, false
		}
		start := SkipSpace(data, i+1)
		if stringsOnly {
			_, end, ok = stringBytes(data, start)
		} else {
			end, ok = valueEnd(data, start)
		}
		if !ok || !member(key, data[start:end]) {
			return 0, false
		}
		if i = SkipSpace(data, end); i >= len(data) {
			return 0, false
		}
		switch data[i] {
		case ',':
			i = SkipSpace(data, i+1)
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// valueEnd returns the index after the plain value that starts at data[i]:
// a plain string, null, true, false, or an array or object of plain strings.
func valueEnd(data []byte, i int) (end int, ok bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		_, end, ok = stringBytes(data, i)
	case '[':
		_, end, ok = StringArray(data, i)
	case '{':
		end, ok = members(data, i, true, func(_, _ []byte) bool { return true })
	case 'n':
		end, ok = literal(data, i, "null")
	case 't':
		end, ok = literal(data, i, "true")
	case 'f':
		end, ok = literal(data, i, "false")
	}
	return end, ok
}

// literal matches the literal lit at data[i]. What follows it is the
// caller's to check (a delimiter or white space), as after any value.
func literal(data []byte, i int, lit string) (int, bool) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// SetString decodes value, a member's value as Object hands it over, into
// the string *dst as encoding/json would into a string field: a plain
// string's text, and nothing for null, which leaves *dst as it is. It
// reports false for any other value, which encoding/json would refuse.
func SetString(dst *string, value []byte) bool {
	switch {
	case IsNull(value):
	case len(value) > 0 && value[0] == '"':
		*dst = string(value[1 : len(value)-1])
	default:
		return false
	}
	return true
}

// IsNull reports whether value, a JSON value without white space around it
// (as Object hands over, or as encoding/json leaves in a json.RawMessage), is
// null.
func IsNull(value []byte) bool { return string(value) == "null" }

// FoldsTo reports whether encoding/json could match key, an object key's
// text, to a struct field named one of names: equal to one of them but for
// ASCII case, or not ASCII at all (encoding/json also folds a few non-ASCII
// letters, such as the Kelvin sign to k; those are left to it). A reader
// that matches a struct's members by their exact names gives up on such a
// key and lets encoding/json decide; any other key is one encoding/json
// skips.
func FoldsTo(key []byte, names []string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, n := range names {
		if len(n) == len(key) && bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}
