package apiclient

import "github.com/cloudnexus/provisioner/internal/jsonenc"

// AppendJSON appends in encoded exactly as json.Marshal encodes it, without
// reflection: an instance is encoded into every event about it.
func (in *Instance) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, in.ID)
	b = append(b, `,"name":`...)
	b = jsonenc.String(b, in.Name)
	b = append(b, `,"status":`...)
	b = jsonenc.String(b, in.Status)
	b = append(b, `,"region":`...)
	b = jsonenc.String(b, in.Region)
	b = append(b, `,"plan":`...)
	b = jsonenc.String(b, in.Plan)
	if in.Image != "" {
		b = append(b, `,"image":`...)
		b = jsonenc.String(b, in.Image)
	}
	if in.IPv4 != "" {
		b = append(b, `,"ipv4":`...)
		b = jsonenc.String(b, in.IPv4)
	}
	if in.CreatedAt != nil {
		b = append(b, `,"created_at":`...)
		b = jsonenc.Time(b, *in.CreatedAt)
	}
	return append(b, '}')
}

// appendJSON appends r encoded exactly as json.Marshal encodes it.
func (r *CreateInstanceRequest) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
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
	return append(b, '}')
}
