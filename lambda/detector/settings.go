package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/defenders-cdk/defenders/internal/detect"
)

// Environment variables. The DEFENDERS_* names besides EnvLockdown are
// those of constructs/detector (which this package must not import: a
// Lambda binary never links the CDK).
const (
	EnvTopicARN     = "DEFENDERS_TOPIC_ARN"
	EnvDLQURL       = "DEFENDERS_DLQ_URL"
	EnvDedupeWindow = "DEFENDERS_DEDUPE_WINDOW"
	EnvInventoryTTL = "DEFENDERS_INVENTORY_TTL"
	EnvSelfRoleARN  = "DEFENDERS_SELF_ROLE_ARN"
	EnvLockdown     = "DEFENDERS_LOCKDOWN"
)

// Defaults of the settings.
const (
	DefaultDedupeWindow = detect.DefaultDedupeWindow
	DefaultInventoryTTL = detect.DefaultCacheTTL
)

// settings is the function's configuration.
type settings struct {
	TopicARN     string
	DLQURL       string
	DedupeWindow time.Duration // negative: deduplication disabled
	InventoryTTL time.Duration
	SelfRoleARN  string
	Lockdown     bool
}

// loadSettings reads and validates the environment through getenv.
// Anything invalid is an error: the function fails closed rather than run
// with a guessed configuration.
func loadSettings(getenv func(string) string) (settings, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := settings{
		TopicARN:     get(EnvTopicARN),
		DLQURL:       get(EnvDLQURL),
		DedupeWindow: DefaultDedupeWindow,
		InventoryTTL: DefaultInventoryTTL,
		SelfRoleARN:  get(EnvSelfRoleARN),
	}
	if !strings.HasPrefix(s.TopicARN, "arn:") || !strings.Contains(s.TopicARN, ":sns:") {
		return settings{}, fmt.Errorf("detector: %s=%q is not an SNS topic ARN", EnvTopicARN, s.TopicARN)
	}
	if u, err := url.Parse(s.DLQURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return settings{}, fmt.Errorf("detector: %s=%q is not an SQS queue URL", EnvDLQURL, s.DLQURL)
	}
	if v := get(EnvDedupeWindow); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return settings{}, fmt.Errorf("detector: %s: %w", EnvDedupeWindow, err)
		case d < 0:
			return settings{}, fmt.Errorf("detector: %s=%q is negative", EnvDedupeWindow, v)
		case d == 0:
			s.DedupeWindow = -1 // detect: negative disables
		default:
			s.DedupeWindow = d
		}
	}
	if v := get(EnvInventoryTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return settings{}, fmt.Errorf("detector: %s: %w", EnvInventoryTTL, err)
		}
		if d <= 0 {
			return settings{}, fmt.Errorf("detector: %s=%q must be positive", EnvInventoryTTL, v)
		}
		s.InventoryTTL = d
	}
	if s.SelfRoleARN != "" && !strings.HasPrefix(s.SelfRoleARN, "arn:") {
		return settings{}, fmt.Errorf("detector: %s=%q is not an ARN", EnvSelfRoleARN, s.SelfRoleARN)
	}
	if v := get(EnvLockdown); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return settings{}, fmt.Errorf("detector: %s=%q is not a boolean", EnvLockdown, v)
		}
		s.Lockdown = b
	}
	return s, nil
}

// newLogger returns the JSON logger, at the level Lambda's advanced
// logging controls set in AWS_LAMBDA_LOG_LEVEL (INFO by default).
func newLogger(w io.Writer, level string) *slog.Logger {
	l := slog.LevelInfo
	switch strings.ToUpper(strings.TrimSpace(level)) {
	case "TRACE", "DEBUG":
		l = slog.LevelDebug
	case "WARN":
		l = slog.LevelWarn
	case "ERROR", "FATAL":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
