package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
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
	// EnvRegions optionally restricts the regions searched for instances
	// that are not in the function's region: comma-separated region names
	// (the function's region is always searched). Unset: every region
	// enabled for the account (ec2:DescribeRegions).
	EnvRegions = "DEFENDERS_REGIONS"
	// EnvRegion is the function's region, set by Lambda.
	EnvRegion = "AWS_REGION"
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
	Region       string   // the function's region ("" here: the SDK configuration's)
	Regions      []string // EnvRegions, nil for every enabled region
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
		Region:       get(EnvRegion),
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
	if v := get(EnvRegions); v != "" {
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			switch {
			case r == "":
			case !validRegion(r):
				return settings{}, fmt.Errorf("detector: %s=%q: %q is not a region name", EnvRegions, v, r)
			case !slices.Contains(s.Regions, r):
				s.Regions = append(s.Regions, r)
			}
		}
		if len(s.Regions) == 0 {
			return settings{}, fmt.Errorf("detector: %s=%q names no region", EnvRegions, v)
		}
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

// validRegion reports whether r looks like an AWS region name
// ("eu-west-1", "us-gov-west-1", "ap-southeast-4").
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 || len(parts[0]) != 2 {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz") != "" {
			return false
		}
	}
	n := parts[len(parts)-1]
	return n != "" && len(n) <= 2 && strings.Trim(n, "0123456789") == ""
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
