package jobs

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// Kind is the kind of an event, also the third token of its subject.
type Kind string

// The event kinds.
const (
	KindCreated   Kind = "created"
	KindCompleted Kind = "completed"
	KindFailed    Kind = "failed"
	KindRejected  Kind = "rejected"
)

// Terminal reports whether an event of this kind ends its request.
func (k Kind) Terminal() bool { return k == KindCompleted || k == KindFailed }

// Error codes the worker itself puts in failed and rejected events. A failed
// event for an API 4xx carries the API's own code instead.
const (
	CodeInvalidRequest      = "INVALID_REQUEST"
	CodeInstanceFailed      = "INSTANCE_FAILED"
	CodeInstanceNotFound    = "INSTANCE_NOT_FOUND"
	CodeProvisionTimeout    = "PROVISION_TIMEOUT"
	CodeRetriesExhausted    = "RETRIES_EXHAUSTED"
	CodeIdempotencyConflict = "IDEMPOTENCY_CONFLICT"
	CodeMalformedMessage    = "MALFORMED_MESSAGE"
)

// Event is what the worker publishes about a request.
type Event struct {
	RequestID string            `json:"request_id"`
	Kind      Kind              `json:"kind"`
	Time      time.Time         `json:"time"`
	Metadata  map[string]string `json:"metadata"`

	// Instance is set on created and completed.
	Instance *apiclient.Instance `json:"instance,omitempty"`
	// DurationMS and APICalls are set on completed: the time from the first
	// delivery of the request to running, and the API calls made for it.
	DurationMS int64 `json:"duration_ms,omitempty"`
	APICalls   int   `json:"api_calls,omitempty"`

	// Error is set on failed and rejected.
	Error *EventError `json:"error,omitempty"`
	// InstanceID is set on failed when an instance had been created, and
	// InstanceDeleted then says whether the worker deleted it.
	InstanceID      string `json:"instance_id,omitempty"`
	InstanceDeleted *bool  `json:"instance_deleted,omitempty"`
	// StreamSequence is set on rejected: the request message's sequence in
	// the requests stream, to find it again.
	StreamSequence uint64 `json:"stream_sequence,omitempty"`
}

// EventError says why a request failed or a message was rejected.
type EventError struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
	// HTTPStatus is the API's status when the error came from the API.
	HTTPStatus int `json:"http_status,omitempty"`
}

// MsgID is the Nats-Msg-Id the event is published with, so JetStream drops a
// second publish of it within the duplicate window. A rejected event also
// names the stream sequence of the message it is about, since one request_id
// (or none) can have several rejected messages.
func (e *Event) MsgID() string {
	id := e.RequestID
	if id == "" {
		id = UnknownRequestID
	}
	if e.Kind == KindRejected {
		return id + ".rejected." + strconv.FormatUint(e.StreamSequence, 10)
	}
	return id + "." + string(e.Kind)
}

// NewEvent returns an event of kind about req at time t, echoing its metadata.
func NewEvent(kind Kind, requestID string, metadata map[string]string, t time.Time) *Event {
	if metadata == nil {
		metadata = map[string]string{}
	}
	return &Event{RequestID: requestID, Kind: kind, Time: t.UTC().Truncate(time.Millisecond), Metadata: metadata}
}

// FieldErrorsJSON encodes field errors as event error details.
func FieldErrorsJSON(fields []FieldError) json.RawMessage {
	b, _ := json.Marshal(fields)
	return b
}

// CloudEventSource is the CloudEvents source attribute of every event.
const CloudEventSource = "urn:cloudnexus:provisioner"

// CloudEventType is the CloudEvents type attribute of an event of kind:
// io.cloudnexus.provisioner.instance.<kind> for the events of a request's
// life, io.cloudnexus.provisioner.request.rejected for a rejected message.
func CloudEventType(kind Kind) string {
	if kind == KindRejected {
		return "io.cloudnexus.provisioner.request.rejected"
	}
	return "io.cloudnexus.provisioner.instance." + string(kind)
}

// Summary renders the event for a person on one line, as provisioner -dev
// and provisionctl print it: kind, request, instance, and the outcome's
// details.
func (e *Event) Summary() string {
	var b strings.Builder
	id := e.RequestID
	if id == "" {
		id = "(no request_id)"
	}
	fmt.Fprintf(&b, "%-9s %s", e.Kind, id)
	if e.Instance != nil {
		fmt.Fprintf(&b, "  %s %q %s", e.Instance.ID, e.Instance.Name, e.Instance.Status)
		if e.Instance.IPv4 != "" {
			fmt.Fprintf(&b, " %s", e.Instance.IPv4)
		}
	}
	if e.Kind == KindCompleted {
		fmt.Fprintf(&b, "  in %s, %d API calls", (time.Duration(e.DurationMS) * time.Millisecond).Round(100*time.Millisecond), e.APICalls)
	}
	if e.Error != nil {
		fmt.Fprintf(&b, "  %s: %s", e.Error.Code, e.Error.Message)
		if len(e.Error.Details) > 0 {
			fmt.Fprintf(&b, " %s", e.Error.Details)
		}
	}
	if e.InstanceID != "" {
		deleted := e.InstanceDeleted != nil && *e.InstanceDeleted
		fmt.Fprintf(&b, "  (instance %s, deleted: %t)", e.InstanceID, deleted)
	}
	if e.StreamSequence != 0 {
		fmt.Fprintf(&b, "  (request message %d)", e.StreamSequence)
	}
	if len(e.Metadata) > 0 {
		md, _ := json.Marshal(e.Metadata)
		fmt.Fprintf(&b, "  metadata %s", md)
	}
	return b.String()
}
