// Command locker is the Defenders locker Lambda (bootstrap of the
// constructs/locker function). It keeps the locks of EC2 instance roles
// true when their instances' addresses change: every EventBridge event (an
// "EC2 Instance State-change Notification", an "AWS API Call via
// CloudTrail" of an EC2 call that changes addresses or instance profiles,
// or a "Scheduled Event") goes to internal/locker, which recomputes and
// rewrites the "defenders-lock" inline policy of the managed roles, in the
// mode each role's defenders:lock-mode tag names.
//
// This package is wiring only:
//
//   - cold start: load the AWS config; if DEFENDERS_LOCKDOWN is "true",
//     lock the function's own credentials with internal/lockdown; build
//     the locker for the roles under DEFENDERS_ROLE_PATH and the inline
//     policy DEFENDERS_POLICY_NAME (both set by the construct; a missing
//     one fails the start, see locker.ConfigFromEnv), rendering the app's
//     trust from DEFENDERS_TRUSTED_EGRESS_PREFIXES and
//     DEFENDERS_SHARED_VPC_ENDPOINTS into every lock (optional; a value
//     that does not parse fails the start). Roles are managed by
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
// It fails closed, as every Defenders Lambda (internal/lambdarun): if the
// cold start fails (configuration, or the lockdown that was asked for), it
// logs "init failed" and exits, so that Lambda reports the failed init and
// starts afresh for the next invocation; no event is handled with anything
// less, and the function never runs with unlocked credentials when
// DEFENDERS_LOCKDOWN is true. DEFENDERS_LOCKDOWN is "true" or "false" in any
// case, unset for false; anything else fails the start (contract.ParseBool).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
	"github.com/defenders-cdk/defenders/internal/lockdown"
	"github.com/defenders-cdk/defenders/internal/locker"
)

// envLockdown, when "true", locks the function's own credentials to its
// egress address (internal/lockdown; see lockdown.OptionsFromEnv for its own
// variables). The locker's own variables are read by locker.ConfigFromEnv.
const envLockdown = contract.EnvLockdown

func main() {
	log := lambdarun.NewLogger(os.Stdout, os.Getenv(lambdarun.EnvLogLevel))
	ctx, cancel := context.WithTimeout(context.Background(), lambdarun.StartTimeout)
	a, err := start(ctx, os.Getenv, os.Stdout)
	cancel()
	if err != nil {
		lambdarun.FailStart(log, err) // exits
	}
	lambda.Start(a)
}

// app is the started function: the locker, the lockdown provider and
// stdout.
type app struct {
	locker   *locker.Locker
	provider *lockdown.Provider // nil unless locked down
	log      *slog.Logger       // writes to out
	out      io.Writer
	outMu    sync.Mutex
	now      func() time.Time
}

// start builds the function from the environment. With
// DEFENDERS_LOCKDOWN=true the locker's clients get the locked credentials,
// or start fails.
func start(ctx context.Context, getenv func(string) string, out io.Writer) (*app, error) {
	lock, err := contract.ParseBool(envLockdown, getenv(envLockdown))
	if err != nil {
		return nil, fmt.Errorf("locker: start: %w", err)
	}
	lc, err := locker.ConfigFromEnv(getenv) // before any call: a missing variable fails fast
	if err != nil {
		return nil, fmt.Errorf("locker: start: %w", err)
	}
	cfg, provider, err := lambdarun.AWSConfig(ctx, getenv, lock, "")
	if err != nil {
		return nil, fmt.Errorf("locker: start: %w", err)
	}
	l, err := locker.NewFromConfig(cfg, lc)
	if err != nil {
		return nil, fmt.Errorf("locker: start: %w", err)
	}
	return &app{
		locker: l, provider: provider, out: out, now: time.Now,
		log: lambdarun.NewLogger(out, getenv(lambdarun.EnvLogLevel)),
	}, nil
}

// Invoke is the Lambda handler (lambda.Handler): one event in, one log
// line and one metrics line out. It takes the raw payload, so that even a
// payload that is not JSON is logged and answered by the locker. The
// response is a JSON Summary; a failure is a messages.InvokeResponse_Error
// whose errorType says what failed.
func (a *app) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	began := a.now()
	rep, err := a.locker.Handle(ctx, json.RawMessage(payload))
	inv := invocation{
		raw: payload, report: rep, err: err,
		began: began, duration: a.now().Sub(began), provider: a.provider,
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
