package jobs

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "provision"

// UnknownRequestID is the subject token used for events about a message that
// carries no valid request_id.
const UnknownRequestID = "unknown"

// Subjects builds the subject names under one prefix. The zero value uses
// DefaultPrefix.
type Subjects struct {
	// Prefix is the first token(s) of every subject. Defaults to "provision".
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Create is the subject create requests are published to.
func (s Subjects) Create() string { return s.prefix() + ".requests.create" }

// Requests is the wildcard the requests stream captures.
func (s Subjects) Requests() string { return s.prefix() + ".requests.>" }

// Events is the wildcard the events stream captures.
func (s Subjects) Events() string { return s.prefix() + ".events.>" }

// Event is the subject of one event about requestID.
func (s Subjects) Event(kind Kind, requestID string) string {
	if requestID == "" {
		requestID = UnknownRequestID
	}
	return s.prefix() + ".events." + string(kind) + "." + requestID
}

// EventsFor is the wildcard a requester subscribes to for every event about
// its own request.
func (s Subjects) EventsFor(requestID string) string {
	return s.prefix() + ".events.*." + requestID
}
