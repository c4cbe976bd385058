package main

import (
	"encoding/json"
	"time"

	"github.com/cloudnexus/provisioner/jobs"
)

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
