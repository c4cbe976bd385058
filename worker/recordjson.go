package worker

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// marshal returns r encoded exactly as encoding/json encodes it, at a
// fraction of the cost: the worker writes a job's record three times, and
// encoding/json spends most of that on reflection and on validating and
// compacting the embedded events again. Created and Terminal are appended
// as they are: the worker only ever sets them to the output of json.Marshal,
// or to what it read back from a record written so.
func (r *Record) marshal() []byte {
	return r.appendJSON(make([]byte, 0, 320+len(r.Created)+len(r.Terminal)))
}

// recordBufs are buffers to encode records into before they are written.
// The KV client copies a value into its connection's buffer before Create or
// Update returns, so a buffer is free again then.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// write calls put with r encoded as marshal encodes it, in a pooled buffer
// that put must not keep, and returns what put returns.
func (r *Record) write(put func(value []byte) (uint64, error)) (uint64, error) {
	bp := recordBufs.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0])
	rev, err := put(b)
	*bp = b[:0]
	recordBufs.Put(bp)
	return rev, err
}

// appendJSON appends r encoded as marshal encodes it.
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, `{"fingerprint":`...)
	b = appendJSONString(b, r.Fingerprint)
	if r.Owner != "" {
		b = append(b, `,"owner":`...)
		b = appendJSONString(b, r.Owner)
	}
	if !r.LeaseUntil.IsZero() {
		b = append(b, `,"lease_until":`...)
		b = appendJSONTime(b, r.LeaseUntil)
	}
	if r.StreamSequence != 0 {
		b = append(b, `,"stream_sequence":`...)
		b = strconv.AppendUint(b, r.StreamSequence, 10)
	}
	b = append(b, `,"started_at":`...)
	b = appendJSONTime(b, r.StartedAt)
	if r.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(r.Attempts), 10)
	}
	if r.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = appendJSONString(b, r.LastError)
	}
	if r.APICalls != 0 {
		b = append(b, `,"api_calls":`...)
		b = strconv.AppendInt(b, r.APICalls, 10)
	}
	if !r.CreateStartedAt.IsZero() {
		b = append(b, `,"create_started_at":`...)
		b = appendJSONTime(b, r.CreateStartedAt)
	}
	if r.InstanceID != "" {
		b = append(b, `,"instance_id":`...)
		b = appendJSONString(b, r.InstanceID)
	}
	if !r.InstanceCreatedAt.IsZero() {
		b = append(b, `,"instance_created_at":`...)
		b = appendJSONTime(b, r.InstanceCreatedAt)
	}
	if len(r.Created) != 0 {
		b = append(b, `,"created_event":`...)
		b = append(b, r.Created...)
	}
	if len(r.Terminal) != 0 {
		b = append(b, `,"terminal_event":`...)
		b = append(b, r.Terminal...)
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as encoding/json encodes it: plain printable
// ASCII at once, anything that needs escaping by encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
