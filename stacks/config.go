// Package stacks holds the Defenders stacks (one file per stack) and the typed, validated
// configuration that main.go reads from the `defenders:` context keys.
package stacks

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/constructs/organization"
	"github.com/defenders-cdk/defenders/internal/checkip"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Context keys (their one definition is in internal/contract). Every setting a user can change
// has exactly one name, documented in the README.
const (
	KeySSHCIDR         = contract.KeySSHCIDR
	KeyCheckipURL      = contract.KeyCheckipURL
	KeyMaxAzs          = contract.KeyMaxAzs
	KeyNATGateways     = contract.KeyNATGateways
	KeyInstanceType    = contract.KeyInstanceType
	KeyManagedPolicies = contract.KeyManagedPolicies
	KeyDetector        = contract.KeyDetector
	KeyAlertEmail      = contract.KeyAlertEmail
	KeyTrailLogGroup   = contract.KeyTrailLogGroup
	KeyLocker          = contract.KeyLocker
	KeyLockdown        = contract.KeyLockdown
	KeyPrefix          = contract.KeyPrefix
	KeyDetectorConc    = contract.KeyDetectorReservedConcurrency
	KeyLockerConc      = contract.KeyLockerReservedConcurrency
	KeyDetectorRegions = contract.KeyDetectorRegions
	KeyTrustedEgress   = contract.KeyTrustedEgressPrefixes
	KeySharedEndpoints = contract.KeySharedVPCEndpoints
	KeyShadowMode      = contract.KeyShadowMode
)

// KnownKeys are every defenders: context key, in the README's order. Any other key under the
// defenders: prefix is an error (a typo such as defenders:sshcidr must not be ignored).
var KnownKeys = []string{
	KeySSHCIDR, KeyCheckipURL, KeyPrefix, KeyMaxAzs, KeyNATGateways, KeyInstanceType, KeyManagedPolicies,
	KeyDetector, KeyAlertEmail, KeyTrailLogGroup, KeyDetectorRegions, KeyDetectorConc, KeyLocker, KeyLockerConc, KeyLockdown,
	KeyTrustedEgress, KeySharedEndpoints,
	KeyOrganizationID, KeyOrganizationTargets, KeyOrganizationRegions, KeyOrganizationCallAs,
	KeySCP, KeySCPTargets, KeySCPRestrictInternet, KeySCPExemptAccounts, KeySCPExemptRoleTag,
	KeyShadowMode, KeyShadowSCP,
}

// KeyPrefixNamespace is the prefix of every Defenders context key.
const KeyPrefixNamespace = contract.ContextNamespace

// DefaultCheckipURL is where the workstation's public address is looked up when
// defenders:sshCidr is not set.
const DefaultCheckipURL = checkip.DefaultURL

// Config is the validated configuration of the Defenders app.
type Config struct {
	// SSHCIDR is the raw value of defenders:sshCidr; SSHCIDRSet is false when the key is unset,
	// which means "look the address up with checkip".
	SSHCIDR    string
	SSHCIDRSet bool
	// CheckipURL is the http(s) endpoint that answers with the caller's public address.
	CheckipURL string
	// MaxAzs is how many Availability Zones the battleground VPC spans (1 to 6).
	MaxAzs int
	// NATGateways is how many NAT gateways the battleground VPC gets (0 to MaxAzs).
	NATGateways int
	// InstanceType is the EC2 instance type of Matt and Luke, e.g. t3.micro.
	InstanceType string
	// ManagedPolicies are the AWS managed policy names attached to each instance role.
	ManagedPolicies []string
	// Detector deploys the CloudTrail detector stack.
	Detector bool
	// AlertEmail is subscribed to the detector's alert topic (optional).
	AlertEmail string
	// TrailLogGroup is an existing CloudTrail log group the detector subscribes to (optional).
	TrailLogGroup string
	// Locker deploys the locker stack.
	Locker bool
	// Lockdown makes the bundled Lambdas lock their own credentials (internal/lockdown).
	Lockdown bool
	// Prefix is prepended (with a dash) to every stack name and export name, so that two copies
	// of the app can live in one account and region. Empty: the historical names.
	Prefix string
	// DetectorReservedConcurrency and LockerReservedConcurrency reserve concurrency for the two
	// Lambdas. 0 (the default) reserves none: Lambda refuses a reservation that leaves less than
	// 10 unreserved, and a new account's whole quota is 10.
	DetectorReservedConcurrency int
	LockerReservedConcurrency   int
	// DetectorRegions restricts where the detector looks for instances of other regions (its
	// own region is always searched). Empty: every region enabled for the account.
	DetectorRegions []string
	// Trust is the app's trusted egress prefixes and shared VPC endpoints
	// (KeyTrustedEgress, KeySharedEndpoints): rendered into every lock, by the
	// deploy-time lock and by the locker, and honoured by the detector.
	Trust lockpolicy.Trust
	// ShadowMode is a lock mode the detector runs in shadow mode (KeyShadowMode): report-only,
	// what that lock would deny per account and role. Empty: off.
	ShadowMode lockpolicy.Mode
	// Organization is organisation mode (defenders:organizationId and the keys after it);
	// the zero value when it is off (stacks/organization.go).
	Organization OrganizationConfig
	// Account and Region make every stack environment-specific when set (FromContext takes them
	// from CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION when defenders:maxAzs is above 2: an
	// environment-agnostic stack can only use 2 Availability Zones).
	Account, Region string
}

// StackName is the name of the Defenders stack id under the configured prefix.
// DetectorShadow is the detector's shadow mode of this configuration (nil: off): the lock mode
// of KeyShadowMode, or the organisation's SCP with KeyShadowSCP.
func (c Config) DetectorShadow() (*detector.Shadow, error) {
	switch {
	case c.ShadowMode != "":
		return &detector.Shadow{Mode: lock.Mode(c.ShadowMode)}, nil
	case c.Organization.ShadowSCP:
		doc, err := organization.RenderSCP(c.Organization.scpProps(c))
		if err != nil {
			return nil, fmt.Errorf("context %s: %w", KeyShadowSCP, err)
		}
		return &detector.Shadow{Policy: doc}, nil
	}
	return nil, nil
}

// LockTrust is Trust as the constructs' props take it.
func (c Config) LockTrust() lock.Trust {
	return lock.Trust{EgressPrefixes: c.Trust.EgressPrefixes, SharedVPCEndpoints: c.Trust.SharedVPCEndpoints}
}

func (c Config) StackName(id string) string {
	if c.Prefix == "" {
		return id
	}
	return c.Prefix + "-" + id
}

// ExportName is a CloudFormation export name under the configured prefix.
func (c Config) ExportName(name string) string { return c.StackName(name) }

// Getter reads one context value; nil means unset. constructs.Node.TryGetContext fits.
type Getter func(key string) any

// NodeGetter adapts a construct's node to a Getter.
func NodeGetter(scope constructs.Construct) Getter {
	return func(key string) any { return scope.Node().TryGetContext(jsii.String(key)) }
}

// MapGetter reads from a context already fetched whole (Node.GetAllContext): one jsii round trip
// for every key instead of two per key (the node, then TryGetContext).
func MapGetter(all map[string]any) Getter {
	return func(key string) any { return all[key] }
}

var (
	prefixRE        = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9-]{0,18}[A-Za-z0-9])?$`)
	instanceTypeRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	managedPolicyRE = regexp.MustCompile(`^[A-Za-z0-9+=,.@_/-]{1,128}$`)
)

// LoadConfig reads and validates every defenders: context key. The first invalid value is
// returned as an error that names the key and says what was wrong; nothing falls back to a
// wider default.
func LoadConfig(get Getter) (Config, error) {
	c := Config{CheckipURL: DefaultCheckipURL, MaxAzs: 2, InstanceType: "t3.micro",
		ManagedPolicies: []string{"AmazonEC2ReadOnlyAccess"}}
	var err error

	if c.Prefix, err = optionalString(get, KeyPrefix); err != nil {
		return c, err
	}
	if c.Prefix != "" && !prefixRE.MatchString(c.Prefix) {
		return c, fmt.Errorf("context %s: %q must start with a letter and have 1 to 20 letters, digits or dashes (it becomes part of stack and export names)", KeyPrefix, c.Prefix)
	}

	if v := get(KeySSHCIDR); v != nil {
		s, ok := v.(string)
		if !ok {
			return c, fmt.Errorf("context %s: want a string of comma-separated CIDRs or \"none\", got %T %v", KeySSHCIDR, v, v)
		}
		c.SSHCIDR, c.SSHCIDRSet = s, true
	}
	if c.CheckipURL, err = stringValue(get, KeyCheckipURL, c.CheckipURL); err != nil {
		return c, err
	}
	u, perr := url.Parse(c.CheckipURL)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("context %s: %q is not an http or https URL", KeyCheckipURL, c.CheckipURL)
	}
	if c.MaxAzs, err = intValue(get, KeyMaxAzs, c.MaxAzs, 1, 6); err != nil {
		return c, err
	}
	if c.NATGateways, err = intValue(get, KeyNATGateways, c.NATGateways, 0, c.MaxAzs); err != nil {
		return c, err
	}
	if c.InstanceType, err = stringValue(get, KeyInstanceType, c.InstanceType); err != nil {
		return c, err
	}
	if !instanceTypeRE.MatchString(c.InstanceType) {
		return c, fmt.Errorf("context %s: %q is not an EC2 instance type such as t3.micro", KeyInstanceType, c.InstanceType)
	}
	mp, err := stringValue(get, KeyManagedPolicies, strings.Join(c.ManagedPolicies, ","))
	if err != nil {
		return c, err
	}
	if c.ManagedPolicies, err = ParseManagedPolicies(mp); err != nil {
		return c, fmt.Errorf("context %s: %w", KeyManagedPolicies, err)
	}
	if c.Detector, err = BoolValue(get, KeyDetector, true); err != nil {
		return c, err
	}
	if c.AlertEmail, err = optionalString(get, KeyAlertEmail); err != nil {
		return c, err
	}
	if c.TrailLogGroup, err = optionalString(get, KeyTrailLogGroup); err != nil {
		return c, err
	}
	if c.Locker, err = BoolValue(get, KeyLocker, true); err != nil {
		return c, err
	}
	if c.Lockdown, err = BoolValue(get, KeyLockdown, false); err != nil {
		return c, err
	}
	regions, err := optionalString(get, KeyDetectorRegions)
	if err != nil {
		return c, err
	}
	for _, r := range strings.Split(regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.DetectorRegions = append(c.DetectorRegions, r)
		}
	}
	prefixes, err := listValue(get, KeyTrustedEgress)
	if err != nil {
		return c, err
	}
	endpoints, err := listValue(get, KeySharedEndpoints)
	if err != nil {
		return c, err
	}
	if c.Trust, err = (lockpolicy.Trust{EgressPrefixes: prefixes}).Validate(nil); err != nil {
		return c, fmt.Errorf("context %s: %w", KeyTrustedEgress, err)
	}
	shared, err := (lockpolicy.Trust{SharedVPCEndpoints: endpoints}).Validate(nil)
	if err != nil {
		return c, fmt.Errorf("context %s: %w", KeySharedEndpoints, err)
	}
	c.Trust.SharedVPCEndpoints = shared.SharedVPCEndpoints
	if c.DetectorReservedConcurrency, err = intValue(get, KeyDetectorConc, 0, 0, 1000); err != nil {
		return c, err
	}
	if c.LockerReservedConcurrency, err = intValue(get, KeyLockerConc, 0, 0, 100); err != nil {
		return c, err
	}
	if c.Organization, err = loadOrganization(get, c); err != nil {
		return c, err
	}
	mode, err := optionalString(get, KeyShadowMode)
	if err != nil {
		return c, err
	}
	if mode != "" {
		if c.ShadowMode, err = lockpolicy.ParseMode(mode); err != nil {
			return c, fmt.Errorf("context %s: %w", KeyShadowMode, err)
		}
		if !c.Detector {
			return c, fmt.Errorf("context %s: shadow mode runs in the detector, and %s is false", KeyShadowMode, KeyDetector)
		}
		if c.Organization.ShadowSCP {
			return c, fmt.Errorf("context %s and %s: the detector shadows one proposal at a time", KeyShadowMode, KeyShadowSCP)
		}
	}
	return c, nil
}

// CheckKeys returns an error naming every context key under "defenders:" that is not one of
// KnownKeys, with the list of known keys. all is the whole context (Node.GetAllContext).
func CheckKeys(all map[string]any) error {
	known := map[string]bool{}
	for _, k := range KnownKeys {
		known[k] = true
	}
	var unknown []string
	for k := range all {
		if strings.HasPrefix(strings.ToLower(k), KeyPrefixNamespace) && !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	hints := make([]string, len(unknown))
	for i, k := range unknown {
		hints[i] = fmt.Sprintf("%q", k)
		for _, kk := range KnownKeys {
			if strings.EqualFold(k, kk) {
				hints[i] += fmt.Sprintf(" (did you mean %s?)", kk)
			}
		}
	}
	return fmt.Errorf("unknown context key %s: the known keys are %s", strings.Join(hints, ", "), strings.Join(KnownKeys, ", "))
}

// ParseManagedPolicies splits a comma-separated list of AWS managed policy names ("none" for
// no managed policy) and validates each name.
func ParseManagedPolicies(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return []string{}, nil
	}
	if s == "" {
		return nil, fmt.Errorf("empty: name at least one AWS managed policy, or none")
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if !managedPolicyRE.MatchString(item) {
			return nil, fmt.Errorf("%q is not an AWS managed policy name", item)
		}
		if seen[item] {
			return nil, fmt.Errorf("%q is listed twice", item)
		}
		seen[item] = true
		out = append(out, item)
	}
	return out, nil
}

func stringValue(get Getter, key, def string) (string, error) {
	v := get(key)
	if v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("context %s: want a string, got %T %v", key, v, v)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("context %s: empty value; remove the key to use the default %q", key, def)
	}
	return s, nil
}

// optionalString reads a string key that has no default; unset or empty means "off".
// listValue reads a list-valued key: a comma-separated string (the form
// `cdk -c key=a,b` gives) or a JSON list of strings (the form cdk.json and
// cdk.context.json allow). Absent is an empty list; blanks are dropped.
func listValue(get Getter, key string) ([]string, error) {
	switch v := get(key).(type) {
	case nil:
		return nil, nil
	case string:
		return lockpolicy.SplitList(v), nil
	case []any:
		var out []string
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("context %s: item %d: want a string, got %T %v", key, i, item, item)
			}
			out = append(out, lockpolicy.SplitList(s)...)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("context %s: want a comma-separated string or a list of strings, got %T %v", key, v, v)
	}
}

func optionalString(get Getter, key string) (string, error) {
	v := get(key)
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("context %s: want a string, got %T %v", key, v, v)
	}
	return strings.TrimSpace(s), nil
}

func intValue(get Getter, key string, def, lo, hi int) (int, error) {
	v := get(key)
	if v == nil {
		return def, nil
	}
	var n int
	switch x := v.(type) {
	case float64: // JSON numbers from cdk.json
		if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, fmt.Errorf("context %s: want a whole number, got %v", key, x)
		}
		if x < float64(lo) || x > float64(hi) {
			return 0, fmt.Errorf("context %s: %v is out of range %d..%d", key, x, lo, hi)
		}
		n = int(x)
	case string: // -c key=value on the command line
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("context %s: want a whole number, got %q", key, x)
		}
		n = i
	default:
		return 0, fmt.Errorf("context %s: want a whole number, got %T %v", key, v, v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("context %s: %d is out of range %d..%d", key, n, lo, hi)
	}
	return n, nil
}

// BoolValue reads a boolean context key: JSON true/false or the strings "true"/"false".
func BoolValue(get Getter, key string, def bool) (bool, error) {
	v := get(key)
	switch x := v.(type) {
	case nil:
		return def, nil
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("context %s: want true or false, got %T %v", key, v, v)
}
