package cnsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// DefaultAPIKey is the API key a simulator accepts unless Config.APIKey says
// otherwise.
const DefaultAPIKey = "cn_test_simulator_key"

// DefaultProvisionDelay is how long a new instance stays pending unless
// Config says otherwise.
const DefaultProvisionDelay = 2 * time.Second

// Page sizes of GET /v1/instances.
const (
	DefaultPageSize = 25
	MaxPageSize     = 100
)

// DefaultRegions returns the regions a simulator accepts unless
// Config.Regions says otherwise.
func DefaultRegions() []string {
	return []string{"us-east-1", "eu-west-1", "ap-south-1"}
}

// DefaultPlans returns the plans a simulator accepts unless Config.Plans says
// otherwise.
func DefaultPlans() []string {
	return []string{"standard-1", "standard-2", "standard-4", "standard-8", "standard-16", "highmem-4", "highmem-8"}
}

// Config configures a simulator. The zero value is a working configuration.
type Config struct {
	// APIKey is the only Bearer token accepted; Server.SetAPIKey changes it
	// later. Defaults to DefaultAPIKey.
	APIKey string
	// ProvisionDelay is how long a new instance stays pending. Zero means the
	// default, so that a zero Config is realistic: set Instant for no delay.
	// Defaults to DefaultProvisionDelay (2s).
	ProvisionDelay time.Duration
	// Instant makes new instances leave pending at once, so that even the
	// create answer shows their final status. Defaults to false.
	Instant bool
	// ProvisionTime, when set, gives each new instance its own provision
	// delay (a negative one counts as zero), overriding ProvisionDelay and
	// Instant. It is called concurrently, once per created instance, never
	// for an idempotent replay. Defaults to nil.
	ProvisionTime func(req apiclient.CreateInstanceRequest) time.Duration
	// Regions are the regions a create may name, in the order the
	// validation error lists them. Defaults to DefaultRegions().
	Regions []string
	// Plans are the plans a create may name. Defaults to DefaultPlans().
	Plans []string
	// IgnoreIdempotencyKey makes every create make a new instance, whatever
	// its Idempotency-Key; Server.SetIgnoreIdempotencyKey changes it later.
	// Defaults to false: the key is honoured.
	IgnoreIdempotencyKey bool
	// Seed seeds the random source of fault rates and of instance ids, so
	// that the same sequence of calls gives the same answers. Defaults to 0.
	Seed uint64
	// Faults are the faults injected from the start; Server.SetFaults
	// changes them later. Defaults to none.
	Faults Faults
	// Now is the clock that instances' created_at and provision delays are
	// measured by. Defaults to time.Now.
	Now func() time.Time
}

// WithDefaults returns c with every unset field set to its default.
func (c Config) WithDefaults() Config {
	if c.APIKey == "" {
		c.APIKey = DefaultAPIKey
	}
	if c.ProvisionDelay == 0 {
		c.ProvisionDelay = DefaultProvisionDelay
	}
	if len(c.Regions) == 0 {
		c.Regions = DefaultRegions()
	}
	if len(c.Plans) == 0 {
		c.Plans = DefaultPlans()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate returns an error naming the first invalid field of c, or nil.
func (c Config) Validate() error {
	if c.ProvisionDelay < 0 {
		return fmt.Errorf("cnsim: ProvisionDelay: %v is negative", c.ProvisionDelay)
	}
	for _, r := range c.Regions {
		if strings.TrimSpace(r) == "" {
			return errors.New("cnsim: Regions: empty region")
		}
	}
	for _, p := range c.Plans {
		if strings.TrimSpace(p) == "" {
			return errors.New("cnsim: Plans: empty plan")
		}
	}
	if err := c.Faults.Validate(); err != nil {
		return fmt.Errorf("cnsim: Faults.%w", err)
	}
	return nil
}

// Server is a CloudNexus API simulator: an http.Handler serving the API under
// /v1, safe for concurrent use.
type Server struct {
	now           func() time.Time
	delay         time.Duration
	provisionTime func(apiclient.CreateInstanceRequest) time.Duration
	regions       map[string]bool
	regionList    string // "us-east-1, eu-west-1, ap-south-1"
	plans         map[string]bool
	planList      string
	idKey         uint32

	apiKey     atomic.Pointer[string]
	faults     atomic.Pointer[Faults]
	ignoreIdem atomic.Bool
	calls      [numEndpoints]atomic.Int64
	http2Calls atomic.Int64

	rngMu sync.Mutex
	rng   *rand.Rand

	// mu guards the instances and the counters below.
	mu       sync.RWMutex
	seq      uint64 // instances ever created; never reset, ids derive from it
	byID     map[string]*record
	order    []*record            // live instances, in creation order
	byRegion map[string][]*record // the same, per region
	idem     map[string]*record   // by Idempotency-Key, deleted ones included
	creates  int
	deletes  int
	byName   map[string]int

	done      chan struct{} // closed by Close, ends Latency waits
	closeOnce sync.Once
	ts        *httptest.Server // set by Start
}

// New returns a simulator for cfg, with defaults applied. It panics when cfg
// is invalid (see Config.Validate); Start returns the error instead.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.WithDefaults()
	s := &Server{
		now:           cfg.Now,
		delay:         cfg.ProvisionDelay,
		provisionTime: cfg.ProvisionTime,
		regions:       make(map[string]bool, len(cfg.Regions)),
		regionList:    strings.Join(cfg.Regions, ", "),
		plans:         make(map[string]bool, len(cfg.Plans)),
		planList:      strings.Join(cfg.Plans, ", "),
		idKey:         seedKey(cfg.Seed),
		rng:           rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		byID:          make(map[string]*record),
		byRegion:      make(map[string][]*record),
		idem:          make(map[string]*record),
		byName:        make(map[string]int),
		done:          make(chan struct{}),
	}
	if cfg.Instant {
		s.delay = 0
	}
	for _, r := range cfg.Regions {
		s.regions[r] = true
	}
	for _, p := range cfg.Plans {
		s.plans[p] = true
	}
	s.SetAPIKey(cfg.APIKey)
	s.ignoreIdem.Store(cfg.IgnoreIdempotencyKey)
	f := cfg.Faults.clone()
	s.faults.Store(&f)
	return s
}

// Start returns a simulator for cfg listening on a loopback port, as
// httptest.NewServer does; the caller must Close it. It returns an error when
// cfg is invalid.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := New(cfg)
	s.ts = httptest.NewUnstartedServer(s)
	s.ts.Config.Protocols = Protocols()
	s.ts.Start()
	// Benchmarks call from many goroutines; the default of 2 idle
	// connections per host would make most calls dial anew.
	if tr, ok := s.ts.Client().Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = 256
	}
	return s, nil
}

// Protocols returns the protocols a server of the simulator speaks: HTTP/1.1,
// and HTTP/2 without TLS (h2c with prior knowledge), which a client with
// apiclient.Config.UnencryptedHTTP2 set uses. Set it as the http.Server's
// Protocols.
func Protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// URL returns the API base URL, "http://127.0.0.1:<port>/v1", of a simulator
// made by Start, or "" for one made by New.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL + "/v1"
}

// Client returns an HTTP client for a simulator made by Start, whose idle
// connections Close closes, or http.DefaultClient for one made by New.
func (s *Server) Client() *http.Client {
	if s.ts == nil {
		return http.DefaultClient
	}
	return s.ts.Client()
}

// Handler returns s as an http.Handler, to mount on another server.
func (s *Server) Handler() http.Handler { return s }

// Close ends any Latency waits in progress (those calls are answered 503)
// and, for a simulator made by Start, shuts its server down and waits for
// the calls in progress. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	if s.ts != nil {
		s.ts.Close()
	}
}

// SetAPIKey makes key the only Bearer token accepted from now on. An empty
// key makes every call fail with 401.
func (s *Server) SetAPIKey(key string) {
	s.apiKey.Store(&key)
}

// SetIgnoreIdempotencyKey switches Idempotency-Key handling: when ignore is
// true, every create makes a new instance.
func (s *Server) SetIgnoreIdempotencyKey(ignore bool) {
	s.ignoreIdem.Store(ignore)
}

// SetFaults replaces the injected faults; calls in progress keep the faults
// they started with. It panics when f is invalid (see Faults.Validate).
func (s *Server) SetFaults(f Faults) {
	if err := f.Validate(); err != nil {
		panic("cnsim: SetFaults: " + err.Error())
	}
	f = f.clone()
	s.faults.Store(&f)
}

// Faults returns a copy of the faults being injected.
func (s *Server) Faults() Faults {
	return s.faults.Load().clone()
}

// Calls returns how many HTTP calls endpoint e has had, whatever their
// answer (401s and injected faults included).
func (s *Server) Calls(e Endpoint) int {
	i := e.index()
	if i < 0 {
		return 0
	}
	return int(s.calls[i].Load())
}

// HTTP2Calls returns how many of the calls counted by Calls came over
// HTTP/2.
func (s *Server) HTTP2Calls() int { return int(s.http2Calls.Load()) }

// Creates returns how many instances have been created, deleted ones
// included, idempotent replays excluded.
func (s *Server) Creates() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.creates
}

// CreatesByName returns how many instances named name have been created,
// deleted ones included.
func (s *Server) CreatesByName(name string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[name]
}

// DuplicateNames returns the names of which more than one instance has been
// created, with how many; an empty map when there are none.
func (s *Server) DuplicateNames() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	dups := make(map[string]int)
	for name, n := range s.byName {
		if n > 1 {
			dups[name] = n
		}
	}
	return dups
}

// Deletes returns how many instances have been deleted.
func (s *Server) Deletes() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.deletes
}

// ResetCounters sets Calls, HTTP2Calls, Creates, CreatesByName,
// DuplicateNames and Deletes back to zero. Instances and idempotency keys
// stay.
func (s *Server) ResetCounters() {
	for i := range s.calls {
		s.calls[i].Store(0)
	}
	s.http2Calls.Store(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates = 0
	s.deletes = 0
	clear(s.byName)
}

// Instances returns the instances not deleted, in creation order, with their
// status at this moment.
func (s *Server) Instances() []apiclient.Instance {
	s.mu.RLock()
	rs := make([]*record, len(s.order))
	copy(rs, s.order)
	s.mu.RUnlock()
	now := s.now()
	out := make([]apiclient.Instance, len(rs))
	for i, r := range rs {
		out[i] = r.view(now)
	}
	return out
}

// Instance returns the instance with the given id and its status at this
// moment; ok is false when there is none or it was deleted.
func (s *Server) Instance(id string) (in apiclient.Instance, ok bool) {
	s.mu.RLock()
	r, ok := s.byID[id]
	s.mu.RUnlock()
	if !ok {
		return apiclient.Instance{}, false
	}
	return r.view(s.now()), true
}

// seedKey spreads the seed over 32 bits (splitmix64's finaliser), so that
// nearby seeds give unrelated ids.
func seedKey(seed uint64) uint32 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return uint32(z ^ z>>31)
}

// pick draws which of some exclusive outcomes happens, given their rates:
// it returns the index of the outcome, or -1 for none. A rate of 1 always
// wins and rates of 0 never do, without drawing.
func (s *Server) pick(rates ...float64) int {
	var total float64
	for i, r := range rates {
		if r >= 1 {
			return i
		}
		total += r
	}
	if total <= 0 {
		return -1
	}
	s.rngMu.Lock()
	u := s.rng.Float64()
	s.rngMu.Unlock()
	for i, r := range rates {
		if u < r {
			return i
		}
		u -= r
	}
	return -1
}
