package cnsim

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// Endpoint names one operation of the API, for per-endpoint faults and
// counters.
type Endpoint string

// The endpoints the simulator serves.
const (
	EndpointCreate Endpoint = "create" // POST /v1/instances
	EndpointGet    Endpoint = "get"    // GET /v1/instances/{id}
	EndpointList   Endpoint = "list"   // GET /v1/instances
	EndpointDelete Endpoint = "delete" // DELETE /v1/instances/{id}
	EndpointMe     Endpoint = "me"     // GET /v1/me
)

const numEndpoints = 5

// Endpoints returns every endpoint the simulator serves, in a fixed order.
func Endpoints() []Endpoint {
	return []Endpoint{EndpointCreate, EndpointGet, EndpointList, EndpointDelete, EndpointMe}
}

// index returns the endpoint's slot in per-endpoint arrays, or -1 when e is
// not an endpoint.
func (e Endpoint) index() int {
	switch e {
	case EndpointCreate:
		return 0
	case EndpointGet:
		return 1
	case EndpointList:
		return 2
	case EndpointDelete:
		return 3
	case EndpointMe:
		return 4
	}
	return -1
}

// Fate is what becomes of a new instance once its provision delay is over.
type Fate int

// Fates. FateDefault lets the Faults' StuckPending and EndInError rates
// decide.
const (
	FateDefault      Fate = iota
	FateRunning           // pending, then running with an ipv4
	FateStuckPending      // pending for ever
	FateError             // pending, then error, without an ipv4
)

func (f Fate) String() string {
	switch f {
	case FateDefault:
		return "default"
	case FateRunning:
		return "running"
	case FateStuckPending:
		return "stuck-pending"
	case FateError:
		return "error"
	}
	return "Fate(" + strconv.Itoa(int(f)) + ")"
}

// Faults is the misbehaviour the simulator injects. The zero value injects
// none. Rates are fractions between 0 and 1; a rate of 1 always applies and
// draws no random number, so runs with rates of only 0 and 1 do not depend on
// the seed.
type Faults struct {
	// ErrorRate is, per endpoint, the fraction of calls answered with an
	// error (ErrorStatus) instead of being served. An authorised call is
	// counted, delayed by Latency, then perhaps failed; nothing is created.
	ErrorRate map[Endpoint]float64
	// ErrorStatus is the status of injected error answers: 429, 500, 502,
	// 503 or 504. Defaults to 503.
	ErrorStatus int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up) on injected error answers, including CreateThen500's.
	RetryAfter time.Duration
	// Latency is, per endpoint, a delay added before answering. It is real
	// time, not Config.Now time, and ends early when the client goes away or
	// the simulator is closed.
	Latency map[Endpoint]time.Duration
	// CreateThen500 is the fraction of successful creates that create the
	// instance but answer 500 INTERNAL_ERROR.
	CreateThen500 float64
	// CreateThenDrop is the fraction of successful creates that create the
	// instance and then close the connection without answering. With
	// CreateThen500 it must not add up to more than 1.
	CreateThenDrop float64
	// StuckPending is the fraction of new instances that never leave pending.
	StuckPending float64
	// EndInError is the fraction of new instances that go from pending to
	// error instead of running. With StuckPending it must not add up to more
	// than 1.
	EndInError float64
	// Fate, when set, decides the fate of each new instance; FateDefault
	// leaves it to StuckPending and EndInError. It is called concurrently,
	// once per created instance, never for an idempotent replay.
	Fate func(req apiclient.CreateInstanceRequest) Fate
}

// Validate returns an error naming the first invalid field of f, or nil.
func (f Faults) Validate() error {
	for e, r := range f.ErrorRate {
		if e.index() < 0 {
			return fmt.Errorf("ErrorRate: unknown endpoint %q", e)
		}
		if !validRate(r) {
			return fmt.Errorf("ErrorRate[%s]: %v is not between 0 and 1", e, r)
		}
	}
	if f.ErrorStatus != 0 {
		if _, _, ok := faultCode(f.ErrorStatus); !ok {
			return fmt.Errorf("ErrorStatus: %d is not one of 429, 500, 502, 503, 504", f.ErrorStatus)
		}
	}
	if f.RetryAfter < 0 {
		return fmt.Errorf("RetryAfter: %v is negative", f.RetryAfter)
	}
	for e, d := range f.Latency {
		if e.index() < 0 {
			return fmt.Errorf("Latency: unknown endpoint %q", e)
		}
		if d < 0 {
			return fmt.Errorf("Latency[%s]: %v is negative", e, d)
		}
	}
	rates := []struct {
		name string
		v    float64
	}{
		{"CreateThen500", f.CreateThen500},
		{"CreateThenDrop", f.CreateThenDrop},
		{"StuckPending", f.StuckPending},
		{"EndInError", f.EndInError},
	}
	for _, r := range rates {
		if !validRate(r.v) {
			return fmt.Errorf("%s: %v is not between 0 and 1", r.name, r.v)
		}
	}
	if f.CreateThen500+f.CreateThenDrop > 1 {
		return errors.New("CreateThen500 + CreateThenDrop: more than 1")
	}
	if f.StuckPending+f.EndInError > 1 {
		return errors.New("StuckPending + EndInError: more than 1")
	}
	return nil
}

func validRate(r float64) bool {
	return !math.IsNaN(r) && r >= 0 && r <= 1
}

// clone copies the maps so that the caller may change its own afterwards.
func (f Faults) clone() Faults {
	if f.ErrorRate != nil {
		m := make(map[Endpoint]float64, len(f.ErrorRate))
		for k, v := range f.ErrorRate {
			m[k] = v
		}
		f.ErrorRate = m
	}
	if f.Latency != nil {
		m := make(map[Endpoint]time.Duration, len(f.Latency))
		for k, v := range f.Latency {
			m[k] = v
		}
		f.Latency = m
	}
	return f
}

// faultCode returns the error code and message of an injected error answer
// with the given status; ok is false for a status Faults does not allow.
func faultCode(status int) (code, message string, ok bool) {
	switch status {
	case http.StatusTooManyRequests:
		return "RATE_LIMITED", "Too many requests", true
	case http.StatusInternalServerError:
		return "INTERNAL_ERROR", "Internal server error", true
	case http.StatusBadGateway:
		return "BAD_GATEWAY", "Bad gateway", true
	case http.StatusServiceUnavailable:
		return "SERVICE_UNAVAILABLE", "Service temporarily unavailable", true
	case http.StatusGatewayTimeout:
		return "GATEWAY_TIMEOUT", "Gateway timeout", true
	}
	return "", "", false
}

// ParseRates parses per-endpoint rates written "create=0.1,get=0.05", as the
// cnsim command's -error-rate flag takes them. An empty string gives a nil
// map. It returns an error for an unknown endpoint, a repeated one, or a rate
// that is not between 0 and 1.
func ParseRates(s string) (map[Endpoint]float64, error) {
	return parseMap(s, func(v string) (float64, error) {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || !validRate(r) {
			return 0, fmt.Errorf("rate %q is not a number between 0 and 1", v)
		}
		return r, nil
	})
}

// ParseLatencies parses per-endpoint latencies written
// "create=100ms,get=50ms", as the cnsim command's -latency flag takes them.
// An empty string gives a nil map. It returns an error for an unknown
// endpoint, a repeated one, or a value that is not a non-negative duration.
func ParseLatencies(s string) (map[Endpoint]time.Duration, error) {
	return parseMap(s, func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("latency %q is not a non-negative duration", v)
		}
		return d, nil
	})
}

func parseMap[V any](s string, parse func(string) (V, error)) (map[Endpoint]V, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	m := make(map[Endpoint]V)
	for item := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not endpoint=value", item)
		}
		e := Endpoint(strings.TrimSpace(k))
		if e.index() < 0 {
			return nil, fmt.Errorf("unknown endpoint %q (want create, get, list, delete or me)", e)
		}
		if _, dup := m[e]; dup {
			return nil, fmt.Errorf("endpoint %q given twice", e)
		}
		val, err := parse(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		m[e] = val
	}
	return m, nil
}
