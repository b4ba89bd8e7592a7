package detect

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// EnvRegion is the function's region, set by Lambda (the detector's own variables are named in
// internal/contract).
const EnvRegion = "AWS_REGION"

// Settings is the detector function's configuration, read from its environment (the names
// are in internal/contract; constructs/detector sets them).
type Settings struct {
	TopicARN     string
	DLQURL       string
	DedupeWindow time.Duration // negative: deduplication disabled
	InventoryTTL time.Duration
	SelfRoleARN  string
	Lockdown     bool     // contract.EnvLockdown, read by contract.ParseBool
	Region       string   // the function's region ("" here: the SDK configuration's)
	Regions      []string // contract.EnvRegions, nil for every enabled region
	// TrustedEgressPrefixes and SharedVPCEndpoints are the app's trust
	// (contract.EnvTrustedEgressPrefixes and contract.EnvSharedVPCEndpoints,
	// read with lockpolicy.ParseTrust, as the locker reads them): what every
	// lock of the app admits besides the instance's own network position,
	// and so what the detector accepts (Policy).
	TrustedEgressPrefixes []netip.Prefix
	SharedVPCEndpoints    []string
	// OrganizationID and MemberRoleName turn on organisation mode
	// (contract.EnvOrganizationID and contract.EnvMemberRoleName, both or
	// neither; see "Organisation mode"): the organisation's id (o-...) and
	// the read-only role the detector assumes in every member account.
	// Organisation mode needs SelfRoleARN (the detector's own account and
	// partition).
	OrganizationID string
	MemberRoleName string
}

// Organization reports whether the settings turn on organisation mode.
func (s Settings) Organization() bool { return s.OrganizationID != "" }

// Partition returns the partition of SelfRoleARN ("aws" when unknown).
func (s Settings) Partition() string {
	if p := strings.SplitN(s.SelfRoleARN, ":", 3); len(p) == 3 && p[0] == "arn" && p[1] != "" {
		return p[1]
	}
	return "aws"
}

// MemberRoleARN returns the ARN of the member role in account.
func (s Settings) MemberRoleARN(account string) string {
	return "arn:" + s.Partition() + ":iam::" + account + ":role/" + s.MemberRoleName
}

var (
	// orgIDRE is an AWS Organizations id.
	orgIDRE = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	// roleNameRE is an IAM role name.
	roleNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// ValidOrganizationID reports whether s is an AWS Organizations id
// ("o-" and 10 to 32 lower-case letters or digits).
func ValidOrganizationID(s string) bool { return orgIDRE.MatchString(s) }

// ValidRoleName reports whether s is an IAM role name (1 to 64 of
// letters, digits and +=,.@_-).
func ValidRoleName(s string) bool { return roleNameRE.MatchString(s) }

// Policy returns the decision policy of the settings: the app's trusted
// egress prefixes and shared VPC endpoints.
func (s Settings) Policy() Policy {
	return Policy{
		TrustedSourcePrefixes: slices.Clone(s.TrustedEgressPrefixes),
		TrustedVPCEndpoints:   slices.Clone(s.SharedVPCEndpoints),
	}
}

// LoadSettings reads and validates the environment through getenv.
// Anything invalid is an error: the function fails closed rather than run
// with a guessed configuration.
func LoadSettings(getenv func(string) string) (Settings, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	s := Settings{
		TopicARN:     get(contract.EnvTopicARN),
		DLQURL:       get(contract.EnvDLQURL),
		DedupeWindow: DefaultDedupeWindow,
		InventoryTTL: DefaultCacheTTL,
		SelfRoleARN:  get(contract.EnvSelfRoleARN),
		Region:       get(EnvRegion),
	}
	if !strings.HasPrefix(s.TopicARN, "arn:") || !strings.Contains(s.TopicARN, ":sns:") {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an SNS topic ARN", contract.EnvTopicARN, s.TopicARN)
	}
	if u, err := url.Parse(s.DLQURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an SQS queue URL", contract.EnvDLQURL, s.DLQURL)
	}
	if v := get(contract.EnvDedupeWindow); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return Settings{}, fmt.Errorf("detector: %s: %w", contract.EnvDedupeWindow, err)
		case d < 0:
			return Settings{}, fmt.Errorf("detector: %s=%q is negative", contract.EnvDedupeWindow, v)
		case d == 0:
			s.DedupeWindow = -1 // detect: negative disables
		default:
			s.DedupeWindow = d
		}
	}
	if v := get(contract.EnvInventoryTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Settings{}, fmt.Errorf("detector: %s: %w", contract.EnvInventoryTTL, err)
		}
		if d <= 0 {
			return Settings{}, fmt.Errorf("detector: %s=%q must be positive", contract.EnvInventoryTTL, v)
		}
		s.InventoryTTL = d
	}
	if s.SelfRoleARN != "" && !strings.HasPrefix(s.SelfRoleARN, "arn:") {
		return Settings{}, fmt.Errorf("detector: %s=%q is not an ARN", contract.EnvSelfRoleARN, s.SelfRoleARN)
	}
	if v := get(contract.EnvRegions); v != "" {
		for _, r := range strings.Split(v, ",") {
			r = strings.TrimSpace(r)
			switch {
			case r == "":
			case !validRegion(r):
				return Settings{}, fmt.Errorf("detector: %s=%q: %q is not a region name", contract.EnvRegions, v, r)
			case !slices.Contains(s.Regions, r):
				s.Regions = append(s.Regions, r)
			}
		}
		if len(s.Regions) == 0 {
			return Settings{}, fmt.Errorf("detector: %s=%q names no region", contract.EnvRegions, v)
		}
	}
	if err := s.readTrust(get); err != nil {
		return Settings{}, err
	}
	lockdown, err := contract.ParseBool(contract.EnvLockdown, get(contract.EnvLockdown))
	if err != nil {
		return Settings{}, fmt.Errorf("detector: %w", err)
	}
	s.Lockdown = lockdown
	if err := s.readOrganization(get); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// readOrganization reads the organisation mode's variables: both or
// neither, valid, and with the detector's own role known.
func (s *Settings) readOrganization(get func(string) string) error {
	s.OrganizationID, s.MemberRoleName = get(contract.EnvOrganizationID), get(contract.EnvMemberRoleName)
	switch {
	case s.OrganizationID == "" && s.MemberRoleName == "":
		return nil
	case s.OrganizationID == "":
		return fmt.Errorf("detector: %s is set without %s", contract.EnvMemberRoleName, contract.EnvOrganizationID)
	case s.MemberRoleName == "":
		return fmt.Errorf("detector: %s is set without %s", contract.EnvOrganizationID, contract.EnvMemberRoleName)
	case !ValidOrganizationID(s.OrganizationID):
		return fmt.Errorf("detector: %s=%q is not an organisation id (o- and 10 to 32 lower-case letters or digits)", contract.EnvOrganizationID, s.OrganizationID)
	case !ValidRoleName(s.MemberRoleName):
		return fmt.Errorf("detector: %s=%q is not an IAM role name", contract.EnvMemberRoleName, s.MemberRoleName)
	case AccountFromARN(s.SelfRoleARN) == "":
		return fmt.Errorf("detector: organisation mode (%s) needs %s: the detector's own account must be known, or every member's record would be judged against its inventory",
			contract.EnvOrganizationID, contract.EnvSelfRoleARN)
	}
	return nil
}

// readTrust reads the app's trust with lockpolicy.ParseTrust, one
// variable at a time so that an error names the variable at fault.
func (s *Settings) readTrust(get func(string) string) error {
	egress, err := lockpolicy.ParseTrust(get(contract.EnvTrustedEgressPrefixes), "")
	if err != nil {
		return fmt.Errorf("detector: %s: %w", contract.EnvTrustedEgressPrefixes, err)
	}
	shared, err := lockpolicy.ParseTrust("", get(contract.EnvSharedVPCEndpoints))
	if err != nil {
		return fmt.Errorf("detector: %s: %w", contract.EnvSharedVPCEndpoints, err)
	}
	for _, raw := range egress.EgressPrefixes {
		p, err := netip.ParsePrefix(raw)
		if err != nil { // cannot happen: ParseTrust canonicalises to CIDRs
			return fmt.Errorf("detector: %s: %q: %w", contract.EnvTrustedEgressPrefixes, raw, err)
		}
		s.TrustedEgressPrefixes = append(s.TrustedEgressPrefixes, p)
	}
	if len(shared.SharedVPCEndpoints) > 0 {
		s.SharedVPCEndpoints = shared.SharedVPCEndpoints
	}
	return nil
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
