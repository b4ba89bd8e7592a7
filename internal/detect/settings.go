package detect

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Environment variables of the detector function (names in internal/contract).
const (
	EnvTopicARN     = contract.EnvTopicARN
	EnvDLQURL       = contract.EnvDLQURL
	EnvDedupeWindow = contract.EnvDedupeWindow
	EnvInventoryTTL = contract.EnvInventoryTTL
	EnvSelfRoleARN  = contract.EnvSelfRoleARN
	EnvLockdown     = contract.EnvLockdown
	// EnvRegions optionally restricts the regions searched for instances
	// that are not in the function's region: comma-separated region names
	// (the function's region is always searched). Unset: every region
	// enabled for the account (ec2:DescribeRegions).
	EnvRegions = contract.EnvRegions
	// EnvRegion is the function's region, set by Lambda.
	EnvRegion = "AWS_REGION"
)

// Settings is the detector function's configuration, read from its environment (the names
// are in internal/contract; constructs/detector sets them).
type Settings struct {
	TopicARN     string
	DLQURL       string
	DedupeWindow time.Duration // negative: deduplication disabled
	InventoryTTL time.Duration
	SelfRoleARN  string
	Lockdown     bool     // EnvLockdown, read by contract.ParseBool
	Region       string   // the function's region ("" here: the SDK configuration's)
	Regions      []string // EnvRegions, nil for every enabled region
}

// LoadSettings reads and validates the environment through getenv.
// Anything invalid is an error: the function fails closed rather than run
// with a guessed configuration.
func LoadSettings(getenv func(string) string) (Settings, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := Settings{
		TopicARN:     get(EnvTopicARN),
		DLQURL:       get(EnvDLQURL),
		DedupeWindow: DefaultDedupeWindow,
		InventoryTTL: DefaultCacheTTL,
		SelfRoleARN:  get(EnvSelfRoleARN),
		Region:       get(EnvRegion),
	}
	if !strings.HasPrefix(s.TopicARN, "arn:") || !strings.Contains(s.TopicARN, ":sns:") {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an SNS topic ARN", EnvTopicARN, s.TopicARN)
	}
	if u, err := url.Parse(s.DLQURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an SQS queue URL", EnvDLQURL, s.DLQURL)
	}
	if v := get(EnvDedupeWindow); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return Settings{}, fmt.Errorf("detector: %s: %w", EnvDedupeWindow, err)
		case d < 0:
			return Settings{}, fmt.Errorf("detector: %s=%q is negative", EnvDedupeWindow, v)
		case d == 0:
			s.DedupeWindow = -1 // detect: negative disables
		default:
			s.DedupeWindow = d
		}
	}
	if v := get(EnvInventoryTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Settings{}, fmt.Errorf("detector: %s: %w", EnvInventoryTTL, err)
		}
		if d <= 0 {
			return Settings{}, fmt.Errorf("detector: %s=%q must be positive", EnvInventoryTTL, v)
		}
		s.InventoryTTL = d
	}
	if s.SelfRoleARN != "" && !strings.HasPrefix(s.SelfRoleARN, "arn:") {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an ARN", EnvSelfRoleARN, s.SelfRoleARN)
	}
	if v := get(EnvRegions); v != "" {
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			switch {
			case r == "":
			case !validRegion(r):
				return Settings{}, fmt.Errorf("detector: %s=%q: %q is not a region name", EnvRegions, v, r)
			case !slices.Contains(s.Regions, r):
				s.Regions = append(s.Regions, r)
			}
		}
		if len(s.Regions) == 0 {
			return Settings{}, fmt.Errorf("detector: %s=%q names no region", EnvRegions, v)
		}
	}
	lockdown, err := contract.ParseBool(EnvLockdown, get(EnvLockdown))
	if err != nil {
		return Settings{}, fmt.Errorf("detector: %w", err)
	}
	s.Lockdown = lockdown
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
