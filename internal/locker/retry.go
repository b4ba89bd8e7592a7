package locker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// Defaults of the retry settings in Config.
const (
	// DefaultMaxAttempts bounds the attempts of one API call that keeps
	// failing with throttling or a transient (5xx, connection) error.
	DefaultMaxAttempts = 6
	// DefaultBaseDelay is the first backoff step for throttling.
	DefaultBaseDelay = 200 * time.Millisecond
	// DefaultMaxDelay caps one backoff step.
	DefaultMaxDelay = 5 * time.Second
	// DefaultNotFoundAttempts bounds the attempts of a call that fails with
	// NoSuchEntity (IAM) or InvalidInstanceID.NotFound (EC2) where that can
	// be eventual consistency: a role, instance profile or instance that was
	// created moments ago.
	DefaultNotFoundAttempts = 5
	// DefaultNotFoundDelay is the first backoff step for NotFound retries.
	DefaultNotFoundDelay = time.Second
)

// Error codes the locker treats specially.
const (
	codeNoSuchEntity       = "NoSuchEntity"
	codeLimitExceeded      = "LimitExceeded"
	codeInstanceIDNotFound = "InvalidInstanceID.NotFound"
)

// retryable is the SDK's own classification of throttling and transient
// errors: the throttle codes (Throttling, ThrottlingException,
// RequestLimitExceeded, RequestThrottled, ...), HTTP 500/502/503/504,
// connection errors and errors that declare themselves retryable. A
// cancelled context is never retried.
var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports whether err says that the entity does not exist.
func isNotFound(err error) bool {
	switch errorCode(err) {
	case codeNoSuchEntity, codeInstanceIDNotFound:
		return true
	}
	return false
}

// sleepContext waits for d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the delay before retry number n (1-based): exponential
// from base, capped at max, with "equal jitter" (half fixed, half random),
// so that concurrent lockers spread out but every wait is at least half the
// step.
func backoff(n int, base, max time.Duration, jitter func() float64) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(jitter()*float64(d-half))
}

// run is the state of one invocation: the report being built (with the
// API call counters), the roles already reconciled, the instances the event
// says are leaving, and what EC2 said about routes and NAT gateways (asked
// once per invocation, whatever the number of roles).
type run struct {
	l      *Locker
	report *Report
	// done holds the roles reconciled (or failed) so far.
	done map[string]bool
	// gone holds the instances that the event says are shutting down or
	// terminated: never live, whatever an eventually consistent
	// DescribeInstances still says.
	gone map[string]bool
	// routes holds the route tables of each VPC asked about.
	routes map[string][]ec2types.RouteTable
	// nats holds the public addresses of each NAT gateway asked about (none
	// for one that is unknown, deleted or failed).
	nats map[string][]netip.Prefix
}

// newRun starts an invocation.
func newRun(l *Locker, rep *Report) *run {
	return &run{l: l, report: rep, done: map[string]bool{}, gone: map[string]bool{},
		routes: map[string][]ec2types.RouteTable{}, nats: map[string][]netip.Prefix{}}
}

// note records a decision in the report.
func (r *run) note(format string, args ...any) {
	r.report.Notes = append(r.report.Notes, fmt.Sprintf(format, args...))
}

// call runs fn, one API operation named op, with bounded retries:
// throttling and transient errors are retried with exponential backoff and
// jitter up to Config.MaxAttempts attempts; when retryNotFound is set, a
// NotFound error is retried up to Config.NotFoundAttempts attempts (IAM and
// EC2 are eventually consistent). Every attempt is counted.
func (r *run) call(ctx context.Context, op string, retryNotFound bool, fn func(context.Context) error) error {
	c := &r.l.cfg
	var throttled, notFound int
	for attempt := 1; ; attempt++ {
		r.report.count(op, attempt > 1)
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return err
		case retryable.IsErrorRetryable(err) == aws.TrueTernary:
			throttled++
			if throttled >= c.MaxAttempts {
				return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			wait = backoff(throttled, c.BaseDelay, c.MaxDelay, c.Jitter)
		case retryNotFound && isNotFound(err):
			notFound++
			if notFound >= c.NotFoundAttempts {
				return fmt.Errorf("still not found after %d attempts: %w", attempt, err)
			}
			wait = backoff(notFound, c.NotFoundDelay, c.MaxDelay, c.Jitter)
		default:
			return err
		}
		if serr := c.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("waiting to retry %s: %w (last error: %w)", op, serr, err)
		}
	}
}
