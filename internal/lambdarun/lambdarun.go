// Package lambdarun is what the Defenders Lambdas (lambda/detector,
// lambda/locker) share about running in Lambda: how they log, and how they
// fail their start. Pure Go: no CDK.
//
// Logging vocabulary: JSON lines on stdout (log/slog's JSON handler, so
// every line has "time", "level" and "msg"), at the level Lambda's
// advanced logging controls set in AWS_LAMBDA_LOG_LEVEL (INFO by default);
// the Lambda request id under KeyRequestID and an error under KeyError, on
// one line (OneLine). Metrics are CloudWatch embedded metric format lines
// (internal/emf) on the same stdout, with the request id under the same key.
//
// A failed start: both mains build everything at cold start (settings,
// AWS configuration, lockdown) and, if that fails, call FailStart: it logs
// "init failed" with the error and exits with status 1. Lambda then
// reports the init failure for that invocation, discards the execution
// environment and runs the init again for the next invocation, so a
// transient failure (the address lookup, STS) is retried by Lambda itself
// and a function that asked for locked credentials never serves an event
// without them. No handler runs in a process whose start failed.
package lambdarun

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockdown"
)

// Keys every Lambda uses in its log lines.
const (
	KeyRequestID = "requestId" // the Lambda request id (also in the EMF records)
	KeyError     = "error"     // what failed, on one line
)

// EnvLogLevel is set by Lambda's advanced logging controls.
const EnvLogLevel = "AWS_LAMBDA_LOG_LEVEL"

// Level maps an AWS_LAMBDA_LOG_LEVEL value to a slog level: TRACE and
// DEBUG are Debug, WARN is Warn, ERROR and FATAL are Error, anything else
// (INFO, unset) is Info.
func Level(v string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN":
		return slog.LevelWarn
	case "ERROR", "FATAL":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger returns the JSON logger writing to w at level (an
// AWS_LAMBDA_LOG_LEVEL value).
func NewLogger(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: Level(level)}))
}

// RequestID returns the invocation's request id, "" outside Lambda.
func RequestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}

// OneLine renders an error text (possibly a joined error) on one line.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// exit is os.Exit, replaced in tests.
var exit = os.Exit

// FailStart logs that the cold start failed and exits with status 1 (see
// the package documentation). It does not return.
func FailStart(log *slog.Logger, err error) {
	log.Error("init failed", KeyError, OneLine(err.Error()))
	exit(1)
}

// StartTimeout bounds a cold start (Lambda's init phase allows 10 s).
const StartTimeout = 8 * time.Second

// AWSConfig loads the AWS configuration and, if lock (DEFENDERS_LOCKDOWN,
// read with contract.ParseBool), locks its credentials to the function's
// own address with internal/lockdown, whose options come from getenv;
// roleARN is the role to assume when DEFENDERS_ROLE_ARN does not name one.
// The provider is nil unless locked. With lock, an error means no
// configuration at all: never the unlocked one.
func AWSConfig(ctx context.Context, getenv func(string) string, lock bool, roleARN string) (aws.Config, *lockdown.Provider, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("load the AWS configuration: %w", err)
	}
	if !lock {
		return cfg, nil, nil
	}
	opts, err := lockdown.OptionsFromEnv(getenv)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("%s=true: %w", contract.EnvLockdown, err)
	}
	if opts.RoleARN == "" {
		opts.RoleARN = roleARN
	}
	locked, p, err := lockdown.Lock(ctx, cfg, opts)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("%s=true: lock the function's own credentials: %w", contract.EnvLockdown, err)
	}
	return locked, p, nil
}
