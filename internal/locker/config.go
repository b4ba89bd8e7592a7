package locker

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Names of the lock and of the managed path.
const (
	// PolicyName is the name of the inline role policy that carries the
	// lock. The locker reads and writes only this policy.
	PolicyName = contract.LockPolicyName
	// ManagedPathPrefix is the default IAM path of the managed roles:
	// every role whose path starts with it is managed, and no other.
	ManagedPathPrefix = contract.LockerRolePath
)

// DefaultMaxPasses is the default of Config.MaxPasses.
const DefaultMaxPasses = 3

// EC2API is the part of the EC2 client the locker uses. *ec2.Client
// implements it.
type EC2API interface {
	// DescribeInstances is ec2.Client.DescribeInstances.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	// DescribeRouteTables is ec2.Client.DescribeRouteTables (nat-egress
	// locks: the route of an instance's subnet to the internet).
	DescribeRouteTables(ctx context.Context, in *ec2.DescribeRouteTablesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	// DescribeNatGateways is ec2.Client.DescribeNatGateways (nat-egress
	// locks: the public addresses of the NAT gateways on that route).
	DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	// DescribeAddresses is ec2.Client.DescribeAddresses (which instance an
	// Elastic IP of a CloudTrail event belongs to).
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
}

// IAMAPI is the part of the IAM client the locker uses. *iam.Client
// implements it.
type IAMAPI interface {
	// GetInstanceProfile is iam.Client.GetInstanceProfile.
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	// ListRoles is iam.Client.ListRoles.
	ListRoles(ctx context.Context, in *iam.ListRolesInput, optFns ...func(*iam.Options)) (*iam.ListRolesOutput, error)
	// ListInstanceProfilesForRole is iam.Client.ListInstanceProfilesForRole.
	ListInstanceProfilesForRole(ctx context.Context, in *iam.ListInstanceProfilesForRoleInput, optFns ...func(*iam.Options)) (*iam.ListInstanceProfilesForRoleOutput, error)
	// ListRolePolicies is iam.Client.ListRolePolicies.
	ListRolePolicies(ctx context.Context, in *iam.ListRolePoliciesInput, optFns ...func(*iam.Options)) (*iam.ListRolePoliciesOutput, error)
	// GetRolePolicy is iam.Client.GetRolePolicy.
	GetRolePolicy(ctx context.Context, in *iam.GetRolePolicyInput, optFns ...func(*iam.Options)) (*iam.GetRolePolicyOutput, error)
	// PutRolePolicy is iam.Client.PutRolePolicy.
	PutRolePolicy(ctx context.Context, in *iam.PutRolePolicyInput, optFns ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	// ListRoleTags is iam.Client.ListRoleTags (the role's lock mode tag).
	ListRoleTags(ctx context.Context, in *iam.ListRoleTagsInput, optFns ...func(*iam.Options)) (*iam.ListRoleTagsOutput, error)
	// ListAttachedRolePolicies is iam.Client.ListAttachedRolePolicies
	// (whether AWSDenyAll is attached to a role without a lock).
	ListAttachedRolePolicies(ctx context.Context, in *iam.ListAttachedRolePoliciesInput, optFns ...func(*iam.Options)) (*iam.ListAttachedRolePoliciesOutput, error)
	// AttachRolePolicy is iam.Client.AttachRolePolicy (AWSDenyAll only).
	AttachRolePolicy(ctx context.Context, in *iam.AttachRolePolicyInput, optFns ...func(*iam.Options)) (*iam.AttachRolePolicyOutput, error)
	// DetachRolePolicy is iam.Client.DetachRolePolicy (AWSDenyAll only).
	DetachRolePolicy(ctx context.Context, in *iam.DetachRolePolicyInput, optFns ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
}

// CloudFormationAPI is the part of the CloudFormation client the locker
// uses. *cloudformation.Client implements it.
type CloudFormationAPI interface {
	// DescribeStackResources is cloudformation.Client.DescribeStackResources.
	DescribeStackResources(ctx context.Context, in *cloudformation.DescribeStackResourcesInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStackResourcesOutput, error)
	// DescribeStacks is cloudformation.Client.DescribeStacks.
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// The real SDK clients satisfy the interfaces.
var (
	_ EC2API            = (*ec2.Client)(nil)
	_ IAMAPI            = (*iam.Client)(nil)
	_ CloudFormationAPI = (*cloudformation.Client)(nil)
)

// Config configures a Locker. EC2, IAM and CloudFormation are required;
// zero values of the other fields mean the defaults.
type Config struct {
	// EC2 describes instances (one region: see the package doc).
	EC2 EC2API
	// IAM reads roles and instance profiles and writes the lock.
	IAM IAMAPI
	// CloudFormation tells, before every write, whether the role's stack
	// is being deleted (same region as EC2: see the package doc).
	CloudFormation CloudFormationAPI
	// RolePath is the IAM path prefix of the managed roles (default
	// ManagedPathPrefix): a role is managed if and only if its path starts
	// with it. It must start and end with "/" and not be "/" (every role).
	// The locker Lambda sets it from DEFENDERS_ROLE_PATH.
	RolePath string
	// PolicyName is the inline policy that carries the lock (default
	// PolicyName). The locker Lambda sets it from DEFENDERS_POLICY_NAME.
	PolicyName string
	// Trust is what the whole app trusts besides each instance's network
	// position (central egress prefixes, shared VPC endpoints): rendered
	// into every lock the locker writes except lockpolicy.DenyAll. New
	// validates it. The locker Lambda sets it from
	// DEFENDERS_TRUSTED_EGRESS_PREFIXES and DEFENDERS_SHARED_VPC_ENDPOINTS.
	Trust lockpolicy.Trust
	// MaxAttempts bounds attempts on throttling and transient errors
	// (default DefaultMaxAttempts).
	MaxAttempts int
	// BaseDelay and MaxDelay shape the throttling backoff (defaults
	// DefaultBaseDelay, DefaultMaxDelay).
	BaseDelay, MaxDelay time.Duration
	// NotFoundAttempts bounds attempts when a just-created role, instance
	// profile or instance is not visible yet (default
	// DefaultNotFoundAttempts).
	NotFoundAttempts int
	// NotFoundDelay is the first NotFound backoff step (default
	// DefaultNotFoundDelay).
	NotFoundDelay time.Duration
	// MaxPasses bounds write-then-verify passes per role (default
	// DefaultMaxPasses); see the package doc on concurrency.
	MaxPasses int
	// Sleep waits between retries; tests inject a recorder. Default: a
	// timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a random number in [0, 1) for backoff jitter.
	// Default: math/rand/v2.Float64.
	Jitter func() float64
}

// Patterns of Config.RolePath and Config.PolicyName (IAM's own rules).
var (
	rolePathPattern   = regexp.MustCompile(`^/([\x{21}-\x{2E}\x{30}-\x{7E}]+/)+$`)
	policyNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
)

// ConfigFromEnv reads the locker function's Config from its environment: the managed role path
// (contract.EnvRolePath) and the lock's policy name (contract.EnvPolicyName), both set by
// constructs/locker, and the app's Trust (contract.EnvTrustedEgressPrefixes and
// contract.EnvSharedVPCEndpoints, comma-separated, see lockpolicy.ParseTrust). A missing path or
// policy name is an error, never the default: a renamed variable must not make the function
// manage another path than its IAM permissions name. The Trust variables are optional (unset:
// trust nothing, the narrowest locks); a value that does not parse is an error naming the
// variable, so that a typo fails the start instead of silently narrowing or widening every lock.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		RolePath:   strings.TrimSpace(getenv(contract.EnvRolePath)),
		PolicyName: strings.TrimSpace(getenv(contract.EnvPolicyName)),
	}
	for _, v := range []struct{ name, value string }{{contract.EnvRolePath, c.RolePath}, {contract.EnvPolicyName, c.PolicyName}} {
		if v.value == "" {
			return Config{}, fmt.Errorf("locker: %s is not set (the locker construct sets it)", v.name)
		}
	}
	egress, err := lockpolicy.ParseTrust(getenv(contract.EnvTrustedEgressPrefixes), "")
	if err != nil {
		return Config{}, fmt.Errorf("locker: %s: %w", contract.EnvTrustedEgressPrefixes, err)
	}
	shared, err := lockpolicy.ParseTrust("", getenv(contract.EnvSharedVPCEndpoints))
	if err != nil {
		return Config{}, fmt.Errorf("locker: %s: %w", contract.EnvSharedVPCEndpoints, err)
	}
	c.Trust = lockpolicy.Trust{EgressPrefixes: egress.EgressPrefixes, SharedVPCEndpoints: shared.SharedVPCEndpoints}
	return c, nil
}
