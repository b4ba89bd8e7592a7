package detect

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Publisher delivers one alert (to SNS, in the Lambda).
type Publisher interface {
	Publish(ctx context.Context, a Alert) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, a Alert) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, a Alert) error { return f(ctx, a) }

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

// Error returns the wrapped error's message.
func (e *permanentError) Error() string { return e.err.Error() }

// Unwrap returns the wrapped error.
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that PublishAll does not retry it (for example an
// SNS InvalidParameter or AuthorizationError). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Retry defaults; see RetryPolicy.
const (
	DefaultMaxAttempts = 4
	DefaultBaseDelay   = 100 * time.Millisecond
	DefaultMaxDelay    = 2 * time.Second
)

// RetryPolicy bounds PublishAll's retries. Zero fields take the defaults.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts per alert, the first included
	// (DefaultMaxAttempts).
	MaxAttempts int
	// BaseDelay is the wait after the first failure; it doubles after each
	// further failure up to MaxDelay (DefaultBaseDelay, DefaultMaxDelay).
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Sleep waits for d or until ctx is done, returning ctx.Err() in the
	// latter case (a timer by default; inject a fake in tests).
	Sleep func(ctx context.Context, d time.Duration) error
}

// FailedAlert is an alert PublishAll could not deliver.
type FailedAlert struct {
	Alert    Alert
	Attempts int   // publish attempts made (0 if the context ended first)
	Err      error // the last error
}

// sleep is the default RetryPolicy.Sleep.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishAll publishes each alert, retrying failures with exponential
// backoff, and returns the alerts that still failed, in order. Nothing is
// dropped: every alert is either published or returned. Errors marked with
// Permanent are not retried. Once ctx is done the remaining alerts are
// returned without further attempts, so give PublishAll a context that
// ends early enough for the caller to send the failures to a dead-letter
// queue.
func PublishAll(ctx context.Context, pub Publisher, alerts []Alert, rp RetryPolicy) []FailedAlert {
	if rp.MaxAttempts <= 0 {
		rp.MaxAttempts = DefaultMaxAttempts
	}
	if rp.BaseDelay <= 0 {
		rp.BaseDelay = DefaultBaseDelay
	}
	if rp.MaxDelay <= 0 {
		rp.MaxDelay = DefaultMaxDelay
	}
	if rp.Sleep == nil {
		rp.Sleep = sleep
	}
	var failed []FailedAlert
	for _, a := range alerts {
		if err := ctx.Err(); err != nil {
			failed = append(failed, FailedAlert{Alert: a, Err: fmt.Errorf("detect: publish alert %s: %w", a.UniqID, err)})
			continue
		}
		attempts, err := publishOne(ctx, pub, a, rp)
		if err != nil {
			failed = append(failed, FailedAlert{Alert: a, Attempts: attempts,
				Err: fmt.Errorf("detect: publish alert %s after %d attempts: %w", a.UniqID, attempts, err)})
		}
	}
	return failed
}

func publishOne(ctx context.Context, pub Publisher, a Alert, rp RetryPolicy) (attempts int, err error) {
	delay := rp.BaseDelay
	for attempts = 1; ; attempts++ {
		err = pub.Publish(ctx, a)
		if err == nil || IsPermanent(err) || attempts >= rp.MaxAttempts {
			return attempts, err
		}
		if serr := rp.Sleep(ctx, delay); serr != nil {
			return attempts, errors.Join(err, serr)
		}
		delay = min(2*delay, rp.MaxDelay)
	}
}
