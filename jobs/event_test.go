package jobs_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/jobs"
)

func TestEventMsgID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ev   jobs.Event
		want string
	}{
		{name: "created", ev: jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindCreated}, want: "req-7f3a9c.created"},
		{name: "completed", ev: jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindCompleted}, want: "req-7f3a9c.completed"},
		{name: "failed", ev: jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindFailed}, want: "req-7f3a9c.failed"},
		{
			// Instance and error do not matter: a republished terminal event
			// must be dropped as a duplicate whatever it says.
			name: "failed with details",
			ev: jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindFailed, InstanceID: "inst_1",
				Error: &jobs.EventError{Code: jobs.CodeProvisionTimeout}},
			want: "req-7f3a9c.failed",
		},
		{
			name: "rejected with request_id",
			ev:   jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindRejected, StreamSequence: 42},
			want: "req-7f3a9c.rejected.42",
		},
		{
			name: "rejected without request_id",
			ev:   jobs.Event{Kind: jobs.KindRejected, StreamSequence: 7},
			want: "unknown.rejected.7",
		},
		{
			name: "rejected, largest sequence",
			ev:   jobs.Event{Kind: jobs.KindRejected, StreamSequence: 1<<64 - 1},
			want: "unknown.rejected.18446744073709551615",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.ev.MsgID(); got != tc.want {
				t.Errorf("MsgID() = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("rejected messages of one request_id differ", func(t *testing.T) {
		t.Parallel()
		a := jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindRejected, StreamSequence: 10}
		b := jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindRejected, StreamSequence: 11}
		if a.MsgID() == b.MsgID() {
			t.Errorf("two rejected messages share MsgID %q", a.MsgID())
		}
	})
}

func TestKindTerminal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind jobs.Kind
		want bool
	}{
		{kind: jobs.KindCreated, want: false},
		{kind: jobs.KindCompleted, want: true},
		{kind: jobs.KindFailed, want: true},
		// Rejected ends a message, not a request: the request_id may still
		// arrive in a good message.
		{kind: jobs.KindRejected, want: false},
		{kind: jobs.Kind(""), want: false},
		{kind: jobs.Kind("Completed"), want: false},
	} {
		if got := tc.kind.Terminal(); got != tc.want {
			t.Errorf("Kind(%q).Terminal() = %v, want %v", tc.kind, got, tc.want)
		}
	}
}

func TestNewEvent(t *testing.T) {
	t.Parallel()
	ist := time.FixedZone("IST", 5*3600+1800)
	at := time.Date(2025, 3, 14, 14, 56, 53, 589_793_238, ist)
	wantTime := time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

	t.Run("fields", func(t *testing.T) {
		t.Parallel()
		md := map[string]string{"team": "payments"}
		ev := jobs.NewEvent(jobs.KindCreated, "req-7f3a9c", md, at)
		want := &jobs.Event{RequestID: "req-7f3a9c", Kind: jobs.KindCreated, Time: wantTime, Metadata: md}
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("NewEvent = %+v, want %+v", ev, want)
		}
		if ev.Time.Location() != time.UTC {
			t.Errorf("time zone = %v, want UTC", ev.Time.Location())
		}
	})

	t.Run("nil metadata", func(t *testing.T) {
		t.Parallel()
		ev := jobs.NewEvent(jobs.KindRejected, "", nil, at)
		if ev.Metadata == nil || len(ev.Metadata) != 0 {
			t.Errorf("metadata = %#v, want an empty map", ev.Metadata)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"metadata":{}`) {
			t.Errorf("JSON %s has no \"metadata\":{}", b)
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(jobs.NewEvent(jobs.KindCreated, "req-7f3a9c", nil, at))
		if err != nil {
			t.Fatal(err)
		}
		// Only the fields every event carries; the rest are omitted.
		want := `{"request_id":"req-7f3a9c","kind":"created","time":"2025-03-14T09:26:53.589Z","metadata":{}}`
		if string(b) != want {
			t.Errorf("JSON = %s, want %s", b, want)
		}
	})

	t.Run("time from the clock", func(t *testing.T) {
		t.Parallel()
		// time.Now carries a monotonic reading and nanoseconds; the event
		// time must survive a JSON round trip exactly, so that a
		// republished event is byte for byte the same.
		ev := jobs.NewEvent(jobs.KindCompleted, "req-7f3a9c", nil, time.Now())
		if ev.Time.Nanosecond()%int(time.Millisecond) != 0 {
			t.Errorf("time %v is not whole milliseconds", ev.Time)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var back jobs.Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Time != ev.Time {
			t.Errorf("time after JSON round trip = %#v, want %#v", back.Time, ev.Time)
		}
	})
}

func TestFieldErrorsJSON(t *testing.T) {
	t.Parallel()
	got := jobs.FieldErrorsJSON([]jobs.FieldError{
		{Field: "name", Reason: "is required"},
		{Field: "ssh_keys[0]", Reason: "must be a non-empty string of at most 4096 bytes"},
	})
	want := `[{"field":"name","reason":"is required"},{"field":"ssh_keys[0]","reason":"must be a non-empty string of at most 4096 bytes"}]`
	if string(got) != want {
		t.Errorf("FieldErrorsJSON = %s, want %s", got, want)
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	type subjects struct {
		create, requests, events, completed, rejectedUnknown, eventsFor string
	}
	build := func(s jobs.Subjects) subjects {
		return subjects{
			create:          s.Create(),
			requests:        s.Requests(),
			events:          s.Events(),
			completed:       s.Event(jobs.KindCompleted, "req-7f3a9c"),
			rejectedUnknown: s.Event(jobs.KindRejected, ""),
			eventsFor:       s.EventsFor("req-7f3a9c"),
		}
	}
	provision := subjects{
		create:          "provision.requests.create",
		requests:        "provision.requests.>",
		events:          "provision.events.>",
		completed:       "provision.events.completed.req-7f3a9c",
		rejectedUnknown: "provision.events.rejected.unknown",
		eventsFor:       "provision.events.*.req-7f3a9c",
	}
	for _, tc := range []struct {
		name string
		s    jobs.Subjects
		want subjects
	}{
		{name: "zero value", s: jobs.Subjects{}, want: provision},
		{name: "default prefix", s: jobs.Subjects{Prefix: jobs.DefaultPrefix}, want: provision},
		{
			name: "custom prefix",
			s:    jobs.Subjects{Prefix: "staging"},
			want: subjects{
				create:          "staging.requests.create",
				requests:        "staging.requests.>",
				events:          "staging.events.>",
				completed:       "staging.events.completed.req-7f3a9c",
				rejectedUnknown: "staging.events.rejected.unknown",
				eventsFor:       "staging.events.*.req-7f3a9c",
			},
		},
		{
			name: "prefix of several tokens",
			s:    jobs.Subjects{Prefix: "acme.eu.provision"},
			want: subjects{
				create:          "acme.eu.provision.requests.create",
				requests:        "acme.eu.provision.requests.>",
				events:          "acme.eu.provision.events.>",
				completed:       "acme.eu.provision.events.completed.req-7f3a9c",
				rejectedUnknown: "acme.eu.provision.events.rejected.unknown",
				eventsFor:       "acme.eu.provision.events.*.req-7f3a9c",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := build(tc.s); got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// subjectMatches reports whether subject matches filter under NATS rules:
// '*' matches one token, a final '>' one or more.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" && i == len(f)-1 {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func TestSubjectsWildcards(t *testing.T) {
	t.Parallel()
	for _, s := range []jobs.Subjects{{}, {Prefix: "acme.eu.provision"}} {
		other := jobs.Subjects{Prefix: "other"}
		for _, tc := range []struct {
			filter, subject string
			want            bool
		}{
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindCreated, "req-7f3a9c"), true},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindCompleted, "req-7f3a9c"), true},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindFailed, "req-7f3a9c"), true},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindRejected, "req-7f3a9c"), true},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindCompleted, "req-7f3a9"), false},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindCompleted, "req-7f3a9c0"), false},
			{s.EventsFor("req-7f3a9c"), s.Event(jobs.KindRejected, ""), false},
			{s.EventsFor("req-7f3a9c"), other.Event(jobs.KindCompleted, "req-7f3a9c"), false},
			{s.EventsFor("req-7f3a9c"), s.Create(), false},
			{s.Events(), s.Event(jobs.KindFailed, "req-7f3a9c"), true},
			{s.Events(), s.Event(jobs.KindRejected, ""), true},
			{s.Events(), s.Create(), false},
			{s.Requests(), s.Create(), true},
			{s.Requests(), s.Event(jobs.KindCreated, "req-7f3a9c"), false},
		} {
			if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
				t.Errorf("%q matches %q = %v, want %v", tc.filter, tc.subject, got, tc.want)
			}
		}
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	deleted := true
	tests := []struct {
		name string
		ev   jobs.Event
		want string
	}{
		{
			name: "completed",
			ev: jobs.Event{RequestID: "req-1", Kind: jobs.KindCompleted, Metadata: map[string]string{"team": "payments"}, DurationMS: 3650, APICalls: 4,
				Instance: &apiclient.Instance{ID: "inst_1", Name: "web-01", Status: "running", IPv4: "10.0.0.6"}},
			want: `completed req-1  inst_1 "web-01" running 10.0.0.6  in 3.7s, 4 API calls  metadata {"team":"payments"}`,
		},
		{
			name: "failed with a deleted instance",
			ev: jobs.Event{RequestID: "req-2", Kind: jobs.KindFailed, InstanceID: "inst_2", InstanceDeleted: &deleted,
				Error: &jobs.EventError{Code: "INSTANCE_FAILED", Message: `instance inst_2 reached status "error"`}},
			want: `failed    req-2  INSTANCE_FAILED: instance inst_2 reached status "error"  (instance inst_2, deleted: true)`,
		},
		{
			name: "rejected without a request_id",
			ev:   jobs.Event{Kind: jobs.KindRejected, StreamSequence: 7, Error: &jobs.EventError{Code: "MALFORMED_MESSAGE", Message: "reject message: request_id is missing"}},
			want: `rejected  (no request_id)  MALFORMED_MESSAGE: reject message: request_id is missing  (request message 7)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.ev.Summary(); got != tt.want {
				t.Errorf("Summary()\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
