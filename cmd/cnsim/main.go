// Command cnsim serves the CloudNexus API simulator (package
// apiclient/cnsim) for local runs and benchmarks. It prints the base URL it
// listens on and stops on SIGINT or SIGTERM. It speaks HTTP/1.1 and HTTP/2
// without TLS (h2c, see CLOUDNEXUS_API_H2C). A bad flag value exits 2 with a
// message naming the flag.
//
//	cnsim -addr 127.0.0.1:8080 -provision-delay 5s -error-rate create=0.1,get=0.05 -retry-after 2s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run serves the simulator until ctx is done and returns the exit code: 0,
// 1 when serving fails, 2 for bad flags.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, addr, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "cnsim: -addr: %v\n", err)
		return 1
	}
	sim := cnsim.New(cfg)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second, Protocols: cnsim.Protocols()}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "cnsim listening on http://%s/v1 (seed %d)\n", ln.Addr(), cfg.Seed)

	select {
	case err := <-served:
		sim.Close()
		fmt.Fprintf(stderr, "cnsim: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	// Closing the simulator first ends injected latencies, so that calls in
	// progress do not hold the shutdown up.
	sim.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "cnsim: shutdown: %v\n", err)
		return 1
	}
	<-served
	return 0
}

// parseFlags returns the simulator's configuration and the listen address.
// It reports a bad value on stderr, naming the flag.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (cnsim.Config, string, error) {
	fs := flag.NewFlagSet("cnsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg cnsim.Config
	f := &cfg.Faults
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address`")
	apiKey := fs.String("api-key", "", "accepted Bearer `key` (default $CNSIM_API_KEY, else "+cnsim.DefaultAPIKey+")")
	delay := fs.Duration("provision-delay", cnsim.DefaultProvisionDelay, "how long a new instance stays pending; 0 for none")
	fs.BoolVar(&cfg.IgnoreIdempotencyKey, "ignore-idempotency-key", false, "make every create a new instance, whatever its Idempotency-Key")
	fs.Func("error-rate", "fraction of calls answered with an error, per endpoint (`create=0.1,get=0.05`; endpoints create, get, list, delete, me)", func(s string) error {
		m, err := cnsim.ParseRates(s)
		f.ErrorRate = m
		return err
	})
	fs.Func("error-status", "`status` of injected errors: 429, 500, 502, 503 or 504 (default 503)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || (n != 429 && n != 500 && n != 502 && n != 503 && n != 504) {
			return errors.New("not one of 429, 500, 502, 503, 504")
		}
		f.ErrorStatus = n
		return nil
	})
	fs.DurationVar(&f.RetryAfter, "retry-after", 0, "Retry-After sent with injected errors (whole seconds, rounded up); 0 for none")
	fs.Func("latency", "delay before answering, per endpoint (`create=100ms,get=50ms`)", func(s string) error {
		m, err := cnsim.ParseLatencies(s)
		f.Latency = m
		return err
	})
	rateFlag(fs, &f.CreateThen500, "create-then-500", "`fraction` of creates that create the instance but answer 500")
	rateFlag(fs, &f.CreateThenDrop, "create-then-drop", "`fraction` of creates that create the instance but drop the connection")
	rateFlag(fs, &f.StuckPending, "stuck-pending", "`fraction` of new instances that never leave pending")
	rateFlag(fs, &f.EndInError, "end-in-error", "`fraction` of new instances that end in error instead of running")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of ids and fault draws (default from the clock, printed at start)")
	if err := fs.Parse(args); err != nil {
		return cnsim.Config{}, "", err
	}

	bad := func(name, format string, a ...any) (cnsim.Config, string, error) {
		err := fmt.Errorf("cnsim: -"+name+": "+format, a...)
		fmt.Fprintln(stderr, err)
		return cnsim.Config{}, "", err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("cnsim: unexpected argument %q: flags only", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return cnsim.Config{}, "", err
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return bad("addr", "%v", err)
	}
	switch {
	case *delay < 0:
		return bad("provision-delay", "%v is negative", *delay)
	case *delay == 0:
		cfg.Instant = true
	default:
		cfg.ProvisionDelay = *delay
	}
	if f.RetryAfter < 0 {
		return bad("retry-after", "%v is negative", f.RetryAfter)
	}
	if f.CreateThen500+f.CreateThenDrop > 1 {
		return bad("create-then-drop", "with -create-then-500, more than 1")
	}
	if f.StuckPending+f.EndInError > 1 {
		return bad("end-in-error", "with -stuck-pending, more than 1")
	}
	cfg.APIKey = *apiKey
	if cfg.APIKey == "" {
		cfg.APIKey = getenv("CNSIM_API_KEY")
	}
	seedSet := false
	fs.Visit(func(fl *flag.Flag) { seedSet = seedSet || fl.Name == "seed" })
	if !seedSet {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return cnsim.Config{}, "", err
	}
	return cfg, *addr, nil
}

// rateFlag defines a flag taking a fraction between 0 and 1.
func rateFlag(fs *flag.FlagSet, p *float64, name, usage string) {
	fs.Func(name, usage+" (0 to 1)", func(s string) error {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return errors.New("not a number between 0 and 1")
		}
		*p = r
		return nil
	})
}
