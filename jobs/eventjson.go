package jobs

import "github.com/cloudnexus/provisioner/internal/jsonenc"

// AppendJSON appends e encoded exactly as json.Marshal encodes it, without
// reflection: the worker encodes two events for every request. It fails only
// where json.Marshal fails, on Error.Details that are not valid JSON.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"request_id":`...)
	b = jsonenc.String(b, e.RequestID)
	b = append(b, `,"kind":`...)
	b = jsonenc.String(b, string(e.Kind))
	b = append(b, `,"time":`...)
	b = jsonenc.Time(b, e.Time)
	b = append(b, `,"metadata":`...)
	b = jsonenc.StringMap(b, e.Metadata)
	if e.Instance != nil {
		b = append(b, `,"instance":`...)
		b = e.Instance.AppendJSON(b)
	}
	if e.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		b = jsonenc.Int(b, e.DurationMS)
	}
	if e.APICalls != 0 {
		b = append(b, `,"api_calls":`...)
		b = jsonenc.Int(b, int64(e.APICalls))
	}
	if e.Error != nil {
		var err error
		b = append(b, `,"error":{"code":`...)
		b = jsonenc.String(b, e.Error.Code)
		b = append(b, `,"message":`...)
		b = jsonenc.String(b, e.Error.Message)
		if len(e.Error.Details) != 0 {
			b = append(b, `,"details":`...)
			if b, err = jsonenc.Raw(b, e.Error.Details); err != nil {
				return nil, err
			}
		}
		if e.Error.HTTPStatus != 0 {
			b = append(b, `,"http_status":`...)
			b = jsonenc.Int(b, int64(e.Error.HTTPStatus))
		}
		b = append(b, '}')
	}
	if e.InstanceID != "" {
		b = append(b, `,"instance_id":`...)
		b = jsonenc.String(b, e.InstanceID)
	}
	if e.InstanceDeleted != nil {
		b = append(b, `,"instance_deleted":`...)
		b = jsonenc.Bool(b, *e.InstanceDeleted)
	}
	if e.StreamSequence != 0 {
		b = append(b, `,"stream_sequence":`...)
		b = jsonenc.Uint(b, e.StreamSequence)
	}
	return append(b, '}'), nil
}

// appendRequestJSON appends r encoded exactly as json.Marshal encodes it.
func appendRequestJSON(b []byte, r *Request) []byte {
	b = append(b, `{"request_id":`...)
	b = jsonenc.String(b, r.RequestID)
	b = append(b, `,"name":`...)
	b = jsonenc.String(b, r.Name)
	b = append(b, `,"plan":`...)
	b = jsonenc.String(b, r.Plan)
	b = append(b, `,"region":`...)
	b = jsonenc.String(b, r.Region)
	b = append(b, `,"image":`...)
	b = jsonenc.String(b, r.Image)
	if len(r.SSHKeys) != 0 {
		b = append(b, `,"ssh_keys":`...)
		b = jsonenc.Strings(b, r.SSHKeys)
	}
	if len(r.Metadata) != 0 {
		b = append(b, `,"metadata":`...)
		b = jsonenc.StringMap(b, r.Metadata)
	}
	return append(b, '}')
}
