// Command locker is the Defenders locker Lambda (bootstrap of the
// constructs/locker function). It keeps the locks of EC2 instance roles
// true when their instances' addresses change: every EventBridge event (an
// "EC2 Instance State-change Notification" or a "Scheduled Event") goes to
// internal/locker, which recomputes and rewrites the "defenders-lock"
// inline policy of the managed roles.
//
// This package is wiring only:
//
//   - cold start: load the AWS config; if DEFENDERS_LOCKDOWN is "true",
//     lock the function's own credentials with internal/lockdown; build
//     the locker for the roles under DEFENDERS_ROLE_PATH and the inline
//     policy DEFENDERS_POLICY_NAME (both set by the construct; a missing
//     one fails the start, see locker.ConfigFromEnv). Roles are managed by
//     path only, as the construct grants the role actions on
//     arn:aws:iam::ACCOUNT:role/PATH* and nothing else.
//   - every invocation: handle the event, write one JSON log line and one
//     CloudWatch Embedded Metric Format line to stdout (see output.go), and
//     return an error if the event was invalid or any role failed, so that
//     Lambda retries, the dead-letter queue gets the event and the Errors
//     alarm fires. A role whose CloudFormation stack is being deleted is
//     not written (see "CloudFormation deletions" in internal/locker): it
//     is logged with its stack and counted in the LocksSkipped metric, and
//     a CloudFormation error fails the role like any other.
//
// It fails closed: if the cold start fails (configuration, or the lockdown
// that was asked for), no event is handled with anything less. Every
// invocation retries the start and returns an error while it keeps
// failing; the function never runs with unlocked credentials when
// DEFENDERS_LOCKDOWN=true.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/defenders-cdk/defenders/internal/lockdown"
	"github.com/defenders-cdk/defenders/internal/locker"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// envLockdown, when "true", locks the function's own credentials to its
// egress address (internal/lockdown; see lockdown.OptionsFromEnv for its own
// variables). The locker's own variables are read by locker.ConfigFromEnv.
const envLockdown = contract.EnvLockdown

// startTimeout bounds the cold start (Lambda's init phase allows 10 s);
// a start retried during an invocation gets the invocation's deadline.
const startTimeout = 8 * time.Second

func main() {
	a := &app{getenv: os.Getenv, out: os.Stdout, now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	_, _ = a.ready(ctx) // a failure is kept, reported and retried by every invocation
	cancel()
	lambda.Start(a)
}

// app is the function: its configuration, the locker once started, and
// stdout.
type app struct {
	getenv func(string) string
	out    io.Writer
	now    func() time.Time

	mu       sync.Mutex
	locker   *locker.Locker
	provider *lockdown.Provider // nil unless locked down
	outMu    sync.Mutex
}

// ready returns the locker, starting it if the cold start has not
// succeeded yet.
func (a *app) ready(ctx context.Context) (*locker.Locker, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.locker != nil {
		return a.locker, nil
	}
	l, p, err := start(ctx, a.getenv)
	if err != nil {
		return nil, err
	}
	a.locker, a.provider = l, p
	return l, nil
}

// start builds the locker from the environment. With DEFENDERS_LOCKDOWN=true
// the locker's clients get the locked credentials, or start fails.
func start(ctx context.Context, getenv func(string) string) (*locker.Locker, *lockdown.Provider, error) {
	lock, err := lockdownWanted(getenv(envLockdown))
	if err != nil {
		return nil, nil, err
	}
	lc, err := locker.ConfigFromEnv(getenv) // before any call: a missing variable fails fast
	if err != nil {
		return nil, nil, fmt.Errorf("locker: start: %w", err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("locker: start: load the AWS configuration: %w", err)
	}
	var provider *lockdown.Provider
	if lock {
		opts, err := lockdown.OptionsFromEnv(getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("locker: start: %s=true: %w", envLockdown, err)
		}
		cfg, provider, err = lockdown.Lock(ctx, cfg, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("locker: start: %s=true: lock the function's own credentials: %w", envLockdown, err)
		}
	}
	l, err := locker.NewFromConfig(cfg, lc)
	if err != nil {
		return nil, nil, fmt.Errorf("locker: start: %w", err)
	}
	return l, provider, nil
}

// lockdownWanted parses DEFENDERS_LOCKDOWN: "true" or "false" (any case),
// or empty for false. Anything else is an error rather than a guess, since
// a mistyped "true" must not start the function unlocked.
func lockdownWanted(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "", "false":
		return false, nil
	}
	return false, fmt.Errorf("locker: start: %s=%q: want true or false", envLockdown, v)
}

// Invoke is the Lambda handler (lambda.Handler): one event in, one log
// line and one metrics line out. It takes the raw payload, so that even a
// payload that is not JSON is logged and answered by the locker. The
// response is a JSON Summary; a failure is a messages.InvokeResponse_Error
// whose errorType says what failed.
func (a *app) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	began := a.now()
	var (
		rep locker.Report
		err error
	)
	l, startErr := a.ready(ctx)
	if startErr != nil {
		rep, err = locker.Report{Calls: map[string]int{}}, startErr
	} else {
		rep, err = l.Handle(ctx, json.RawMessage(payload))
	}
	inv := invocation{
		raw: payload, report: rep, err: err, notStarted: startErr != nil,
		began: began, duration: a.now().Sub(began), provider: a.lockdownProvider(),
	}
	a.emit(ctx, inv)
	if err != nil {
		return nil, inv.lambdaError()
	}
	out, err := json.Marshal(inv.summary())
	if err != nil {
		return nil, fmt.Errorf("locker: encode the response: %w", err)
	}
	return out, nil
}

// lockdownProvider returns the lockdown provider, or nil.
func (a *app) lockdownProvider() *lockdown.Provider {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.provider
}
