package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/jobs"
)

// eventLine renders an event for a person on one line, as provisioner -dev
// prints them: kind, request, instance, and the outcome's details.
func eventLine(ev jobs.Event) string {
	var b strings.Builder
	id := ev.RequestID
	if id == "" {
		id = "(no request_id)"
	}
	fmt.Fprintf(&b, "%-9s %s", ev.Kind, id)
	if ev.Instance != nil {
		fmt.Fprintf(&b, "  %s %q %s", ev.Instance.ID, ev.Instance.Name, ev.Instance.Status)
		if ev.Instance.IPv4 != "" {
			fmt.Fprintf(&b, " %s", ev.Instance.IPv4)
		}
	}
	if ev.Kind == jobs.KindCompleted {
		fmt.Fprintf(&b, "  in %s, %d API calls", (time.Duration(ev.DurationMS) * time.Millisecond).Round(100*time.Millisecond), ev.APICalls)
	}
	if ev.Error != nil {
		fmt.Fprintf(&b, "  %s: %s", ev.Error.Code, ev.Error.Message)
		if len(ev.Error.Details) > 0 {
			fmt.Fprintf(&b, " %s", ev.Error.Details)
		}
	}
	if ev.InstanceID != "" {
		deleted := ev.InstanceDeleted != nil && *ev.InstanceDeleted
		fmt.Fprintf(&b, "  (instance %s, deleted: %t)", ev.InstanceID, deleted)
	}
	if ev.StreamSequence != 0 {
		fmt.Fprintf(&b, "  (request message %d)", ev.StreamSequence)
	}
	if len(ev.Metadata) > 0 {
		md, _ := json.Marshal(ev.Metadata)
		fmt.Fprintf(&b, "  metadata %s", md)
	}
	return b.String()
}

// outcome summarises a stored terminal event: "completed" or
// "failed:<code>", "" when there is none.
func outcome(data json.RawMessage) string {
	if len(data) == 0 {
		return ""
	}
	var ev jobs.Event
	if json.Unmarshal(data, &ev) != nil {
		return "?"
	}
	if ev.Error != nil {
		return string(ev.Kind) + ":" + ev.Error.Code
	}
	return string(ev.Kind)
}

// exitForKind is the exit code of a request whose outcome is kind.
func exitForKind(kind jobs.Kind) int {
	if kind == jobs.KindCompleted {
		return exitOK
	}
	return exitFailed
}

// age renders how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}
