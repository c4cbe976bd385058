package worker

import (
	"sync"

	"github.com/cloudnexus/provisioner/internal/jsonenc"
)

// recordBufs are buffers to encode records into before they are written.
// The KV client copies a value into its connection's buffer before Create or
// Update returns, so a buffer is free again then.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// write calls put with r encoded exactly as encoding/json encodes it (see
// appendJSON), in a pooled buffer that put must not keep, and returns what
// put returns.
func (r *Record) write(put func(value []byte) (uint64, error)) (uint64, error) {
	bp := recordBufs.Get().(*[]byte)
	b := r.appendJSON((*bp)[:0])
	rev, err := put(b)
	*bp = b[:0]
	recordBufs.Put(bp)
	return rev, err
}

// appendJSON appends r encoded exactly as encoding/json encodes it, at a
// fraction of the cost: the worker writes a job's record three times, and
// encoding/json spends most of that on reflection and on validating and
// compacting the embedded events again. Created and Terminal are appended
// as they are: the worker only ever sets them to the output of
// jobs.Event.AppendJSON (json.Marshal's output), or to what it read back from
// a record written so.
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, `{"fingerprint":`...)
	b = jsonenc.String(b, r.Fingerprint)
	if r.Owner != "" {
		b = append(b, `,"owner":`...)
		b = jsonenc.String(b, r.Owner)
	}
	if !r.LeaseUntil.IsZero() {
		b = append(b, `,"lease_until":`...)
		b = jsonenc.Time(b, r.LeaseUntil)
	}
	if r.StreamSequence != 0 {
		b = append(b, `,"stream_sequence":`...)
		b = jsonenc.Uint(b, r.StreamSequence)
	}
	b = append(b, `,"started_at":`...)
	b = jsonenc.Time(b, r.StartedAt)
	if r.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = jsonenc.Int(b, int64(r.Attempts))
	}
	if r.LastError != "" {
		b = append(b, `,"last_error":`...)
		b = jsonenc.String(b, r.LastError)
	}
	if r.APICalls != 0 {
		b = append(b, `,"api_calls":`...)
		b = jsonenc.Int(b, r.APICalls)
	}
	if !r.CreateStartedAt.IsZero() {
		b = append(b, `,"create_started_at":`...)
		b = jsonenc.Time(b, r.CreateStartedAt)
	}
	if r.InstanceID != "" {
		b = append(b, `,"instance_id":`...)
		b = jsonenc.String(b, r.InstanceID)
	}
	if !r.InstanceCreatedAt.IsZero() {
		b = append(b, `,"instance_created_at":`...)
		b = jsonenc.Time(b, r.InstanceCreatedAt)
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
