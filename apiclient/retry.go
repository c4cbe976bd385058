package apiclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Retry runs op until it returns nil or an error that is not Retryable,
// waiting between attempts by exponential backoff with jitter (RetryInitial,
// RetryMaxInterval, RetryMaxElapsed); a Retry-After on an *Error is a floor
// on the next wait. op may also return backoff.Permanent(err) to stop.
//
// On failure Retry returns op's last error as op returned it (unwrapped from
// backoff.PermanentError), including once RetryMaxElapsed has passed or a
// Retry-After would end past it. When ctx ends during a wait it returns at
// once an error that wraps ctx.Err() and names the last error in its text;
// when ctx ends during an attempt, op's error (which wraps ctx.Err() for the
// Client's own calls) is returned.
func (c *Client) Retry(ctx context.Context, op func(ctx context.Context) error) error {
	exp := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.RetryInitial,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          backoff.DefaultMultiplier,
		MaxInterval:         c.cfg.RetryMaxInterval,
		MaxElapsedTime:      c.cfg.RetryMaxElapsed,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	policy := &floorBackOff{ExponentialBackOff: exp}
	var last error
	attempt := 0
	err := backoff.RetryNotify(func() error {
		attempt++
		err := op(context.WithValue(ctx, attemptKey{}, attempt))
		if err == nil {
			return nil
		}
		if perm, ok := errors.AsType[*backoff.PermanentError](err); ok {
			last = perm.Err
			return err
		}
		last = err
		if !Retryable(err) {
			return backoff.Permanent(err)
		}
		policy.floor = 0
		if apiErr, ok := errors.AsType[*Error](err); ok {
			policy.floor = apiErr.RetryAfter
		}
		return err
	}, backoff.WithContext(policy, ctx), nil)
	// RetryNotify returns ctx.Err() itself when ctx ends during a wait.
	if cerr := ctx.Err(); cerr != nil && err == cerr && last != nil && last != err {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}

// attemptKey is the context key of the number of the attempt Retry is on.
type attemptKey struct{}

// isRetry reports whether ctx is that of a second or later attempt of Retry.
func isRetry(ctx context.Context) bool {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n > 1
}

// floorBackOff is an ExponentialBackOff whose next wait is at least floor,
// and which stops rather than wait past MaxElapsedTime for it.
type floorBackOff struct {
	*backoff.ExponentialBackOff
	floor time.Duration
}

func (b *floorBackOff) NextBackOff() time.Duration {
	next := b.ExponentialBackOff.NextBackOff()
	if next == backoff.Stop || next >= b.floor {
		return next
	}
	if limit := b.MaxElapsedTime; limit != 0 && b.GetElapsedTime()+b.floor > limit {
		return backoff.Stop
	}
	return b.floor
}

// Retryable reports whether err is worth trying again: an *Error that is
// Temporary (5xx, 429), or a failure of one attempt that got no usable
// answer (a network error, the attempt's own Timeout, a 2xx body that could
// not be read or decoded). It is false for other 4xx, ErrUnauthorized, the
// end of the caller's context, and errors that did not come from an attempt.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if ae, ok := errors.AsType[*attemptError](err); ok {
		return ae.retryable
	}
	if apiErr, ok := errors.AsType[*Error](err); ok {
		return apiErr.Temporary()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's context, as far as can be told
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return retryableNetError(err)
	}
	return false
}

// retryableNetError reports whether a transport error may go away: anything
// but a rejected server certificate.
func retryableNetError(err error) bool {
	_, badCert := errors.AsType[*tls.CertificateVerificationError](err)
	return !badCert
}

// attemptError is a failure of one attempt to get a usable answer. Its
// message is written for the log, without the full URL; err keeps the cause
// for errors.Is and errors.As.
type attemptError struct {
	msg       string
	err       error
	retryable bool
}

func (e *attemptError) Error() string { return e.msg }
func (e *attemptError) Unwrap() error { return e.err }
