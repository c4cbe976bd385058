package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudnexus/provisioner/internal/plainjson"
)

// DefaultBaseURL is the documented base URL of the CloudNexus API.
const DefaultBaseURL = "https://api.cloudnexus.io/v1"

// Endpoint names, as reported in CallInfo.Endpoint. Each has its own
// overload gate.
const (
	EndpointCreate = "create"
	EndpointGet    = "get"
	EndpointDelete = "delete"
	EndpointList   = "list"
	EndpointMe     = "me"
)

const (
	// maxBodyBytes caps the body of a successful response the client reads;
	// a list page of 100 instances is about 25 KiB.
	maxBodyBytes = 8 << 20
	// findPageSize is the page size FindInstanceByName asks for, the API's
	// documented maximum.
	findPageSize = 100
	// maxFindPages bounds FindInstanceByName against a server that never
	// returns a short page.
	maxFindPages = 10000
)

// Config configures a Client. The zero value of every field but APIKey is
// replaced by its default in New.
type Config struct {
	// BaseURL is the API's base URL including the version, without a
	// trailing slash; paths such as "/instances" are appended to it.
	// Defaults to "https://api.cloudnexus.io/v1".
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>". It is required and
	// never appears in an error or a log. There is no default.
	APIKey string
	// HTTPClient sends the requests and is used as it is, except that a
	// redirect is never followed: when its CheckRedirect is nil, a copy
	// with one that refuses redirects is used (see refuseRedirect). Its
	// Timeout should be zero or longer than Timeout, which the client
	// applies per attempt.
	// Defaults to a client whose transport is a clone of
	// http.DefaultTransport keeping MaxConnsPerHost idle connections per host.
	HTTPClient *http.Client
	// MaxConnsPerHost bounds the connections of the default HTTPClient; it
	// is unused when HTTPClient is set. Defaults to 64.
	MaxConnsPerHost int
	// UnencryptedHTTP2 makes the default HTTPClient speak HTTP/2 without TLS
	// (h2c, with prior knowledge) to an http:// BaseURL, for a server or
	// proxy known to accept it: the calls share one multiplexed connection
	// (more only past the server's limit of concurrent streams), and
	// MaxConnsPerHost does not apply. It is unused for an https:// BaseURL,
	// where HTTP/2 is negotiated with TLS whatever it says, and when
	// HTTPClient is set. Defaults to false (HTTP/1.1 to an http:// BaseURL).
	UnencryptedHTTP2 bool
	// Timeout is the deadline of one HTTP attempt, including reading the
	// response body. Defaults to 15s.
	Timeout time.Duration
	// RetryInitial is the first wait of Retry, and how long an endpoint's
	// gate stays closed after a 503 or 429 without Retry-After.
	// Defaults to 500ms.
	RetryInitial time.Duration
	// RetryMaxInterval caps one wait of Retry (a Retry-After may exceed it).
	// Defaults to 30s.
	RetryMaxInterval time.Duration
	// RetryMaxElapsed is how long Retry keeps trying before it returns the
	// last error. Defaults to 5m.
	RetryMaxElapsed time.Duration
	// UserAgent is sent in the User-Agent header.
	// Defaults to "cloudnexus-provisioner".
	UserAgent string
	// Observer, when set, is called after every HTTP attempt, from the
	// goroutine that made it; it must be safe for concurrent use.
	// Defaults to nil (no observer).
	Observer func(CallInfo)
}

// CallInfo describes one HTTP attempt, for metrics.
type CallInfo struct {
	Endpoint   string // one of the Endpoint constants
	StatusCode int    // 0 when no response was received
	Duration   time.Duration
	Err        error // nil when the attempt succeeded
	// Retry is true when the attempt repeats an earlier one: the second or
	// later run of the innermost Retry's op that made it.
	Retry bool
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.MaxConnsPerHost == 0 {
		cfg.MaxConnsPerHost = 64
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = 500 * time.Millisecond
	}
	if cfg.RetryMaxInterval == 0 {
		cfg.RetryMaxInterval = 30 * time.Second
	}
	if cfg.RetryMaxElapsed == 0 {
		cfg.RetryMaxElapsed = 5 * time.Minute
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "cloudnexus-provisioner"
	}
	return cfg
}

// validate checks a Config that has its defaults applied. Its errors name the
// field and never contain the API key.
func (cfg Config) validate() error {
	if cfg.APIKey == "" {
		return errors.New("apiclient: APIKey is required")
	}
	for _, r := range cfg.APIKey {
		if r <= ' ' || r >= 0x7f {
			return errors.New("apiclient: APIKey must be printable ASCII without spaces")
		}
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return errors.New("apiclient: BaseURL is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("apiclient: BaseURL scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return errors.New("apiclient: BaseURL has no host")
	case u.User != nil:
		return errors.New("apiclient: BaseURL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("apiclient: BaseURL must not have a query or fragment")
	}
	if cfg.MaxConnsPerHost < 0 {
		return errors.New("apiclient: MaxConnsPerHost must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", cfg.Timeout},
		{"RetryInitial", cfg.RetryInitial},
		{"RetryMaxInterval", cfg.RetryMaxInterval},
		{"RetryMaxElapsed", cfg.RetryMaxElapsed},
	} {
		if d.v < 0 {
			return fmt.Errorf("apiclient: %s must not be negative", d.name)
		}
	}
	if cfg.RetryMaxInterval < cfg.RetryInitial {
		return errors.New("apiclient: RetryMaxInterval must not be shorter than RetryInitial")
	}
	return nil
}

// Client calls the CloudNexus API. It is safe for concurrent use.
type Client struct {
	cfg     Config
	baseURL string // cfg.BaseURL without trailing slash
	hc      *http.Client
	ownsHC  bool // hc was built by New, so Close may close its connections
	gates   map[string]*gate
}

// New returns a Client for cfg after applying defaults. On an invalid Config
// it returns nil and an error naming the field.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		baseURL: strings.TrimRight(cfg.BaseURL, "/"),
		hc:      cfg.HTTPClient,
		gates:   make(map[string]*gate),
	}
	switch {
	case c.hc == nil:
		c.hc = &http.Client{Transport: NewTransport(cfg), CheckRedirect: refuseRedirect}
		c.ownsHC = true
	case c.hc.CheckRedirect == nil:
		hc := *c.hc // the caller's client, its transport shared
		hc.CheckRedirect = refuseRedirect
		c.hc = &hc
	}
	for _, e := range []string{EndpointCreate, EndpointGet, EndpointDelete, EndpointList, EndpointMe} {
		c.gates[e] = &gate{initial: cfg.RetryInitial}
	}
	return c, nil
}

// refuseRedirect makes a 3xx the answer to a call instead of following it:
// net/http follows a 301, 302 or 303 with a GET, so a DELETE, or a create,
// redirected by a proxy would come back as the success of that GET, with
// nothing deleted or created. The call fails with the 3xx as an *Error,
// which is not retried.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewTransport returns the transport of the HTTP client New builds when
// Config.HTTPClient is nil, for callers that wrap it (to trace requests, say)
// and pass the result back as Config.HTTPClient. It is a clone of
// http.DefaultTransport that:
//   - may open cfg.MaxConnsPerHost connections per host and keeps as many
//     idle, so a burst of concurrent jobs reuses its connections instead of
//     opening and closing them;
//   - negotiates HTTP/2 over TLS (as http.DefaultTransport does), or speaks
//     it without TLS to an http:// BaseURL when cfg.UnencryptedHTTP2 is set,
//     then over one connection, and more only when the server's limit of
//     concurrent streams fills it;
//   - on HTTP/2, where many calls share one connection, pings a connection
//     that has been silent for 15s and closes it when the ping is not
//     answered within 10s, so that a connection the network lost fails fast
//     instead of holding every call on it until its timeout.
//
// Defaults are applied to cfg first; the other fields are not used.
func NewTransport(cfg Config) *http.Transport {
	cfg = cfg.withDefaults()
	t := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	if def, ok := http.DefaultTransport.(*http.Transport); ok {
		t = def.Clone()
	}
	t.MaxConnsPerHost = cfg.MaxConnsPerHost
	t.MaxIdleConnsPerHost = cfg.MaxConnsPerHost
	if t.MaxIdleConns != 0 && t.MaxIdleConns < cfg.MaxConnsPerHost {
		t.MaxIdleConns = cfg.MaxConnsPerHost
	}
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Scheme == "http" && cfg.UnencryptedHTTP2 {
		// Without HTTP1 in the set, http:// requests use h2c.
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
		// One connection carries the calls. The HTTP/2 transport opens
		// another when the server's limit of concurrent streams fills it;
		// a larger limit here would only let a burst of first calls dial
		// one connection each before the first one is up.
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost = 1, 1
	}
	return t
}

// Close closes the idle connections of the HTTP client New built. It does
// nothing to a Config.HTTPClient, which belongs to the caller. The Client
// remains usable.
func (c *Client) Close() {
	if c.ownsHC {
		c.hc.CloseIdleConnections()
	}
}

// CreateInstance provisions an instance with POST /v1/instances, sending
// idempotencyKey in the Idempotency-Key header when it is not empty.
//
// It makes one attempt and never retries: when it fails with an error that is
// Retryable the outcome is unknown, and the caller should look the instance up
// (FindInstanceByName) before creating it again. On failure it returns nil and
// an *Error for a non-2xx answer, or another error.
func (c *Client) CreateInstance(ctx context.Context, req CreateInstanceRequest, idempotencyKey string) (*Instance, error) {
	body := req.appendJSON(nil)
	var hdr http.Header
	if idempotencyKey != "" {
		hdr = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var inst *Instance
	err := c.do(ctx, call{
		endpoint: EndpointCreate,
		method:   http.MethodPost,
		path:     "/instances",
		body:     body,
		header:   hdr,
		decode: func(b []byte) (err error) {
			inst, err = decodeInstance(b)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// GetInstance returns the instance id from GET /v1/instances/{id}, retrying
// with Retry. On failure it returns nil and the last error; a 404 is an
// *Error with StatusCode 404, returned at once.
func (c *Client) GetInstance(ctx context.Context, id string) (*Instance, error) {
	if id == "" {
		return nil, errors.New("get instance: empty id")
	}
	var inst *Instance
	err := c.Retry(ctx, func(ctx context.Context) error {
		return c.do(ctx, call{
			endpoint: EndpointGet,
			method:   http.MethodGet,
			path:     "/instances/" + url.PathEscape(id),
			decode: func(b []byte) (err error) {
				inst, err = decodeInstance(b)
				return err
			},
		})
	})
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// DeleteInstance deletes the instance id with DELETE /v1/instances/{id},
// retrying with Retry. A 404 means the instance is already gone and returns
// nil. On failure it returns the last error.
func (c *Client) DeleteInstance(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("delete instance: empty id")
	}
	err := c.Retry(ctx, func(ctx context.Context) error {
		return c.do(ctx, call{
			endpoint: EndpointDelete,
			method:   http.MethodDelete,
			path:     "/instances/" + url.PathEscape(id),
		})
	})
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		return nil
	}
	return err
}

// ListInstances returns one page of GET /v1/instances, retrying with Retry.
// Zero fields of opts are not sent. On failure it returns nil and the last
// error; a 2xx body without an "instances" key is a Retryable error.
func (c *Client) ListInstances(ctx context.Context, opts ListOptions) (*InstanceList, error) {
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", opts.Status)
	}
	if opts.Region != "" {
		q.Set("region", opts.Region)
	}
	if opts.PageSize != 0 {
		q.Set("page_size", strconv.Itoa(opts.PageSize))
	}
	if opts.Page != 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	var list *InstanceList
	err := c.Retry(ctx, func(ctx context.Context) error {
		return c.do(ctx, call{
			endpoint: EndpointList,
			method:   http.MethodGet,
			path:     "/instances",
			query:    q,
			decode: func(b []byte) (err error) {
				list, err = decodeList(b)
				return err
			},
		})
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// FindInstanceByName looks for the instance called name in region by reading
// every page of GET /v1/instances?region=... . When several match it returns
// the one created first (then the smallest id); when none does it returns
// (nil, nil). An empty region matches any region. On failure it returns nil
// and the error of the page that failed.
//
// It stops at a page shorter than the page size, at the page that reaches
// meta.total, and at a page with no instance it has not already seen (a
// server that ignores the page parameter).
func (c *Client) FindInstanceByName(ctx context.Context, region, name string) (*Instance, error) {
	if name == "" {
		return nil, errors.New("find instance: empty name")
	}
	seen := make(map[string]bool)
	var best *Instance
	for page := 1; page <= maxFindPages; page++ {
		list, err := c.ListInstances(ctx, ListOptions{Region: region, PageSize: findPageSize, Page: page})
		if err != nil {
			return nil, fmt.Errorf("find instance %s in %s: page %d: %w", name, region, page, err)
		}
		fresh := 0
		for i := range list.Instances {
			inst := &list.Instances[i]
			if !seen[inst.ID] {
				seen[inst.ID] = true
				fresh++
			}
			if inst.Name == name && (region == "" || inst.Region == region) && (best == nil || createdBefore(inst, best)) {
				best = inst
			}
		}
		size := findPageSize
		if ps := list.Meta.PageSize; ps > 0 && ps < size {
			size = ps // the server capped the page size
		}
		switch {
		case len(list.Instances) < size,
			list.Meta.Total > 0 && page*size >= list.Meta.Total,
			fresh == 0:
			return best, nil
		}
	}
	if best != nil {
		return best, nil
	}
	return nil, fmt.Errorf("find instance %s in %s: gave up after %d pages", name, region, maxFindPages)
}

// createdBefore orders instances by creation time, unknown last, then by id.
func createdBefore(a, b *Instance) bool {
	switch {
	case a.CreatedAt != nil && b.CreatedAt == nil:
		return true
	case a.CreatedAt == nil && b.CreatedAt != nil:
		return false
	case a.CreatedAt != nil && !a.CreatedAt.Equal(*b.CreatedAt):
		return a.CreatedAt.Before(*b.CreatedAt)
	}
	return a.ID < b.ID
}

// Me returns the body of GET /v1/me, retrying with Retry; it tells whether
// the API key works. On failure it returns nil and the last error (an error
// matching ErrUnauthorized for a bad key).
func (c *Client) Me(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.Retry(ctx, func(ctx context.Context) error {
		return c.do(ctx, call{
			endpoint: EndpointMe,
			method:   http.MethodGet,
			path:     "/me",
			decode: func(b []byte) error {
				if !json.Valid(b) {
					return errors.New("response is not JSON")
				}
				out = slices.Clone(b)
				return nil
			},
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeInstance decodes an instance, either bare or wrapped as
// {"instance": {...}}, in one pass over the body (it is decoded for every
// poll). A bare instance of plain members is read directly
// (decodePlainInstance); anything else goes to encoding/json.
func decodeInstance(b []byte) (*Instance, error) {
	inst, ok := decodePlainInstance(b)
	if !ok {
		var v struct {
			Instance
			Wrapped *Instance `json:"instance"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		inst = &v.Instance
		if v.Wrapped != nil {
			inst = v.Wrapped
		}
	}
	if inst.ID == "" {
		return nil, errors.New("response has no instance id")
	}
	return inst, nil
}

// instanceKeys are the JSON names decodeInstance decodes into, "instance"
// for the wrapped form included.
var instanceKeys = [...]string{"id", "name", "status", "region", "plan", "image", "ipv4", "created_at", "instance"}

// decodePlainInstance reads a bare instance whose members are plain (see
// package plainjson), with exactly what encoding/json would make of it into
// decodeInstance's struct, and reports false for anything it is not sure of:
// the wrapped form, a key encoding/json would match to a member only
// case-insensitively, a value of the wrong type, a number. Unknown keys are
// skipped, as encoding/json skips them.
func decodePlainInstance(b []byte) (*Instance, bool) {
	inst := new(Instance)
	ok := plainjson.Object(b, func(key, value []byte) bool {
		var dst *string
		switch string(key) {
		case "id":
			dst = &inst.ID
		case "name":
			dst = &inst.Name
		case "status":
			dst = &inst.Status
		case "region":
			dst = &inst.Region
		case "plan":
			dst = &inst.Plan
		case "image":
			dst = &inst.Image
		case "ipv4":
			dst = &inst.IPv4
		case "created_at":
			if plainjson.IsNull(value) {
				inst.CreatedAt = nil
				return true
			}
			var t time.Time
			if value[0] != '"' || t.UnmarshalJSON(value) != nil {
				return false
			}
			inst.CreatedAt = &t
			return true
		default:
			return !plainjson.FoldsTo(key, instanceKeys[:])
		}
		return plainjson.SetString(dst, value)
	})
	return inst, ok
}

// decodeList decodes a list page, which must have an "instances" key (null
// counts as no instances): taking another 2xx body for an empty page could
// make FindInstanceByName miss an instance.
func decodeList(b []byte) (*InstanceList, error) {
	var page struct {
		Instances json.RawMessage `json:"instances"`
		Meta      ListMeta        `json:"meta"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return nil, err
	}
	if len(page.Instances) == 0 {
		return nil, errors.New(`response has no "instances"`)
	}
	list := &InstanceList{Meta: page.Meta}
	if err := json.Unmarshal(page.Instances, &list.Instances); err != nil {
		return nil, err
	}
	return list, nil
}

// call is one HTTP request of an endpoint.
type call struct {
	endpoint string
	method   string
	path     string // appended to the base URL, already escaped
	query    url.Values
	body     []byte // JSON, nil for none
	header   http.Header
	decode   func([]byte) error // decodes a 2xx body; nil to ignore it
}

// do makes one attempt of cl: it waits on the endpoint's gate, sends the
// request under its own deadline, and turns the answer into an error. Errors
// of the attempt that a later attempt may not repeat are wrapped in
// *attemptError so that Retryable reports them.
func (c *Client) do(ctx context.Context, cl call) (err error) {
	g := c.gates[cl.endpoint]
	probe, err := g.enter(ctx)
	if err != nil {
		return fmt.Errorf("cloudnexus %s %s: waiting for overload to pass: %w", cl.method, cl.path, err)
	}
	outcome := outcomeAbandoned
	var retryAfter time.Duration
	defer func() { g.leave(probe, outcome, retryAfter) }()
	if check, _ := ctx.Value(sendCheckKey{}).(func(context.Context) error); check != nil {
		if err := check(ctx); err != nil {
			return fmt.Errorf("cloudnexus %s %s: not sent: %w", cl.method, cl.path, err)
		}
	}

	target := c.baseURL + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, target, body)
	if err != nil {
		return fmt.Errorf("cloudnexus %s %s: %w", cl.method, cl.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range cl.header {
		req.Header[k] = v
	}
	if cl.method == http.MethodPost {
		// net/http re-sends a request carrying an Idempotency-Key by itself
		// when a reused connection drops before the answer. Against an API
		// that ignores the key that is a second instance nobody hears of;
		// without GetBody the error comes back here, and the caller looks
		// for the instance before creating again.
		req.GetBody = nil
	}

	countCall(ctx)
	start := time.Now()
	status := 0
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer(CallInfo{Endpoint: cl.endpoint, StatusCode: status, Duration: time.Since(start), Err: err, Retry: isRetry(ctx)})
		}
	}()

	resp, err := c.hc.Do(req)
	if err != nil {
		outcome = c.noAnswer(ctx)
		return c.attemptFailed(ctx, actx, cl, "", err)
	}
	status = resp.StatusCode
	if status < 200 || status > 299 {
		apiErr := newError(resp, cl.method, cl.path, c.cfg.APIKey, time.Now())
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			outcome, retryAfter = outcomeThrottled, apiErr.RetryAfter
		} else {
			outcome = outcomeAnswered
		}
		return apiErr
	}
	outcome = outcomeAnswered
	b, err := readBody(resp.Body, maxBodyBytes)
	if err != nil {
		return c.attemptFailed(ctx, actx, cl, "read response: ", err)
	}
	if cl.decode != nil {
		if err := cl.decode(b); err != nil {
			return &attemptError{
				msg:       fmt.Sprintf("cloudnexus %s %s: %d with undecodable body: %v", cl.method, cl.path, status, err),
				err:       err,
				retryable: true, // for a create, whether it happened is unknown
			}
		}
	}
	return nil
}

// noAnswer is the gate outcome of an attempt that got no response: abandoned
// when the caller's ctx ended, a network failure otherwise.
func (c *Client) noAnswer(ctx context.Context) gateOutcome {
	if ctx.Err() != nil {
		return outcomeAbandoned
	}
	return outcomeNoAnswer
}

// attemptFailed wraps err, a failure to get or read a response. It is
// Retryable unless the caller's ctx ended or the server's certificate was
// rejected.
func (c *Client) attemptFailed(ctx, actx context.Context, cl call, what string, err error) error {
	prefix := fmt.Sprintf("cloudnexus %s %s: %s", cl.method, cl.path, what)
	inner := err
	if ue, ok := errors.AsType[*url.Error](err); ok {
		inner = ue.Err // the message names the path already
	}
	switch {
	case ctx.Err() != nil:
		return &attemptError{msg: prefix + inner.Error(), err: err}
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		return &attemptError{msg: fmt.Sprintf("%sattempt timed out after %v", prefix, c.cfg.Timeout), err: err, retryable: true}
	default:
		return &attemptError{msg: prefix + inner.Error(), err: err, retryable: retryableNetError(err)}
	}
}

// readBody reads at most limit bytes of body and closes it; a longer body is
// an error.
func readBody(body io.ReadCloser, limit int64) ([]byte, error) {
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response body exceeds %d bytes", limit)
	}
	return b, nil
}

// sendCheckKey is the context key of WithSendCheck.
type sendCheckKey struct{}

// WithSendCheck returns a copy of ctx under which check runs right before
// each HTTP attempt is sent, after any wait for an overloaded endpoint. An
// error from check stops the attempt unsent; the call returns it, wrapped,
// and it is not Retryable unless check's own error is. The worker confirms
// with it that it still holds a job's lease before a create, which may have
// waited behind the overload gate (or in a frozen process) longer than the
// lease lasts.
func WithSendCheck(ctx context.Context, check func(context.Context) error) context.Context {
	return context.WithValue(ctx, sendCheckKey{}, check)
}

// counterKey is the context key of CountCalls.
type counterKey struct{}

// counter is one CountCalls counter and the ones of the parent contexts.
type counter struct {
	n      *atomic.Int64
	parent *counter
}

// CountCalls returns a copy of ctx under which every HTTP attempt the Client
// makes adds one to n, as do the counters of enclosing CountCalls contexts.
func CountCalls(ctx context.Context, n *atomic.Int64) context.Context {
	parent, _ := ctx.Value(counterKey{}).(*counter)
	return context.WithValue(ctx, counterKey{}, &counter{n: n, parent: parent})
}

func countCall(ctx context.Context) {
	for c, _ := ctx.Value(counterKey{}).(*counter); c != nil; c = c.parent {
		c.n.Add(1)
	}
}
