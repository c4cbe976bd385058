package apiclient

import (
	"encoding/json"
	"time"
)

// Instance statuses the API documents, plus the final ones the provisioner
// treats as failures. Any other status is taken as not yet final.
const (
	StatusPending    = "pending"
	StatusRunning    = "running"
	StatusStopped    = "stopped"
	StatusError      = "error"
	StatusFailed     = "failed"
	StatusTerminated = "terminated"
)

// Instance is a compute instance as the API returns it.
type Instance struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	Region    string     `json:"region"`
	Plan      string     `json:"plan"`
	Image     string     `json:"image,omitempty"`
	IPv4      string     `json:"ipv4,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// FailedStatus reports whether status is one an instance cannot leave to
// reach running.
func FailedStatus(status string) bool {
	switch status {
	case StatusError, StatusFailed, StatusStopped, StatusTerminated:
		return true
	}
	return false
}

// CreateInstanceRequest is the body of POST /v1/instances.
type CreateInstanceRequest struct {
	Name    string   `json:"name"`
	Plan    string   `json:"plan"`
	Region  string   `json:"region"`
	Image   string   `json:"image"`
	SSHKeys []string `json:"ssh_keys,omitempty"`
}

// ListOptions filters GET /v1/instances.
type ListOptions struct {
	Status   string // running, stopped, pending; empty for all
	Region   string // empty for all
	PageSize int    // 1 to 100; 0 means the API's default (25)
	Page     int    // 1-based; 0 means the first page
}

// ListMeta is the pagination block of a list response.
type ListMeta struct {
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

// InstanceList is one page of GET /v1/instances.
type InstanceList struct {
	Instances []Instance `json:"instances"`
	Meta      ListMeta   `json:"meta"`
}

// ErrorBody is the API's documented error envelope.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of the error envelope. Details is kept as raw
// JSON because the reference documents only one shape of it.
type ErrorDetail struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
}
