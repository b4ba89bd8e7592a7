package locker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Names of the opt-in and of the lock.
const (
	// PolicyName is the name of the inline role policy that carries the
	// lock. The locker reads and writes only this policy.
	PolicyName = contract.LockPolicyName
	// ManagedPathPrefix is the IAM path that opts a role in: every role
	// whose path starts with it is managed.
	ManagedPathPrefix = contract.LockerRolePath
	// OptInTagKey and OptInTagValue are the role tag that opts a role in
	// regardless of its path (unless Config.PathOnly is set).
	OptInTagKey = "defenders:lock"
	// OptInTagValue is the only value of OptInTagKey that opts in; it is
	// compared case-sensitively, like IAM's StringEquals.
	OptInTagValue = "true"
)

// DefaultMaxPasses is the default of Config.MaxPasses.
const DefaultMaxPasses = 3

// EC2API is the part of the EC2 client the locker uses. *ec2.Client
// implements it.
type EC2API interface {
	// DescribeInstances is ec2.Client.DescribeInstances.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// IAMAPI is the part of the IAM client the locker uses. *iam.Client
// implements it.
type IAMAPI interface {
	// GetInstanceProfile is iam.Client.GetInstanceProfile.
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	// GetRole is iam.Client.GetRole.
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
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
	// RolePath is the IAM path prefix that opts a role in (default
	// ManagedPathPrefix). It must start and end with "/" and not be "/"
	// (every role). The locker Lambda sets it from DEFENDERS_ROLE_PATH.
	RolePath string
	// PolicyName is the inline policy that carries the lock (default
	// PolicyName). The locker Lambda sets it from DEFENDERS_POLICY_NAME.
	PolicyName string
	// PathOnly ignores the opt-in tag: only roles under RolePath
	// are managed, and no GetRole or tag discovery calls are made. Set it
	// when the locker's IAM permissions are path-scoped only.
	PathOnly bool
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

// Locker keeps the locks of managed roles true. It is safe for concurrent
// use; each call builds its own Report.
type Locker struct {
	cfg Config
}

// New returns a Locker, filling in defaults. It fails if EC2, IAM or
// CloudFormation is missing or a setting is negative.
func New(c Config) (*Locker, error) {
	if c.EC2 == nil || c.IAM == nil || c.CloudFormation == nil {
		return nil, errors.New("locker: new: Config.EC2, Config.IAM and Config.CloudFormation are required")
	}
	if c.MaxAttempts < 0 || c.NotFoundAttempts < 0 || c.MaxPasses < 0 ||
		c.BaseDelay < 0 || c.MaxDelay < 0 || c.NotFoundDelay < 0 {
		return nil, errors.New("locker: new: attempts, passes and delays must not be negative")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.RolePath == "" {
		c.RolePath = ManagedPathPrefix
	}
	if !rolePathPattern.MatchString(c.RolePath) {
		return nil, fmt.Errorf("locker: new: role path %q must look like /defenders/: start and end with /, and not be / (every role)", c.RolePath)
	}
	if c.PolicyName == "" {
		c.PolicyName = PolicyName
	}
	if !policyNamePattern.MatchString(c.PolicyName) {
		return nil, fmt.Errorf("locker: new: %q is not an IAM policy name", c.PolicyName)
	}
	def(&c.MaxAttempts, DefaultMaxAttempts)
	def(&c.NotFoundAttempts, DefaultNotFoundAttempts)
	def(&c.MaxPasses, DefaultMaxPasses)
	defDur(&c.BaseDelay, DefaultBaseDelay)
	defDur(&c.MaxDelay, DefaultMaxDelay)
	defDur(&c.NotFoundDelay, DefaultNotFoundDelay)
	if c.Sleep == nil {
		c.Sleep = sleepContext
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	return &Locker{cfg: c}, nil
}

// NewFromConfig returns a Locker over real EC2, IAM and CloudFormation
// clients built from cfg. The clients are built with SDK retries off (one
// attempt per call), because the Locker retries itself, with bounds and
// counters; leaving both on would multiply the attempts. c.EC2, c.IAM and
// c.CloudFormation are ignored.
func NewFromConfig(cfg aws.Config, c Config) (*Locker, error) {
	c.EC2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	c.IAM = iam.NewFromConfig(cfg, func(o *iam.Options) { o.RetryMaxAttempts = 1 })
	c.CloudFormation = cloudformation.NewFromConfig(cfg, func(o *cloudformation.Options) { o.RetryMaxAttempts = 1 })
	return New(c)
}

// Action is what the locker did to a role.
type Action string

// Actions of a Result.
const (
	// ActionUnchanged means the current lock already was the desired one.
	ActionUnchanged Action = "unchanged"
	// ActionWritten means the lock was written.
	ActionWritten Action = "written"
	// ActionFallback means the desired lock did not fit the size quota and
	// a coarser one is in place (written now or already there). The Lambda
	// should emit a metric and alarm on it.
	ActionFallback Action = "fallback"
	// ActionError means the role could not be reconciled; its lock was
	// left as it was (never widened).
	ActionError Action = "error"
	// ActionSkipped means the lock had to change but was not written,
	// because the CloudFormation stack that owns the role is deleting it
	// (or failed to, and the role has neither a lock nor an instance): see
	// Result.Stack, Result.Reason and "CloudFormation deletions" in the
	// package doc. The lock was left as it was, or stays absent.
	ActionSkipped Action = "skipped"
)

// Mode is the shape of a lock.
type Mode string

// Lock modes.
const (
	// ModeExact lists every public address of the role's live instances.
	ModeExact Mode = "exact"
	// ModeAggregated lists covering prefixes (size fallback).
	ModeAggregated Mode = "aggregated"
	// ModeVPCEndpointsOnly denies every internet call and allows only
	// calls through VPC endpoints of the listed VPCs.
	ModeVPCEndpointsOnly Mode = "vpc-endpoints-only"
	// ModeDenyAll is DenyAllDocument.
	ModeDenyAll Mode = "deny-all"
)

// Result is the outcome for one managed role.
type Result struct {
	// Role is the role name.
	Role string `json:"role"`
	// Action is what happened.
	Action Action `json:"action"`
	// Mode is the shape of the lock now in place (or desired, on error;
	// empty when skipped before anything was written).
	Mode Mode `json:"mode,omitempty"`
	// Written reports whether PutRolePolicy succeeded during this call.
	Written bool `json:"written"`
	// Reason explains the mode when it is not ModeExact, or why the role
	// was skipped.
	Reason string `json:"reason,omitempty"`
	// Stack is the CloudFormation stack that owns the role, when the
	// locker had to ask (before a write) and one does.
	Stack string `json:"stack,omitempty"`
	// StackStatus is Stack's status then, e.g. "DELETE_IN_PROGRESS".
	StackStatus string `json:"stackStatus,omitempty"`
	// Instances are the role's instances that shaped the lock.
	Instances []Instance `json:"instances,omitempty"`
	// Addresses are the public addresses found on the live instances.
	Addresses []string `json:"addresses"`
	// SourceIPs are the addresses or prefixes the lock allows (after any
	// aggregation; empty in VPC-endpoints-only and deny-all modes).
	SourceIPs []string `json:"sourceIps"`
	// VPCs are the VPCs whose endpoints the lock allows.
	VPCs []string `json:"vpcs"`
	// Size is the lock's size in IAM characters.
	Size int `json:"size"`
	// Budget is what the role's other inline policies leave of
	// lockpolicy.MaxRolePolicySize.
	Budget int `json:"budget"`
	// Passes is the number of write-then-verify passes.
	Passes int `json:"passes"`
	// Notes are warnings that need no alarm by themselves.
	Notes []string `json:"notes,omitempty"`
	// Error describes the failure when Action is ActionError.
	Error string `json:"error,omitempty"`
	// Err is the failure when Action is ActionError.
	Err error `json:"-"`
}

// Skip records a role the locker looked at and left alone.
type Skip struct {
	// Role is the role name.
	Role string `json:"role"`
	// Reason says why.
	Reason string `json:"reason"`
}

// Report is the outcome of one invocation.
type Report struct {
	// Event is the event handled (zero for a direct Reconcile call).
	Event Event `json:"event"`
	// Results has one entry per managed role, in processing order.
	Results []Result `json:"results"`
	// Skipped lists roles that are not managed. (A managed role left alone
	// because CloudFormation is deleting it is a Result, ActionSkipped.)
	Skipped []Skip `json:"skipped,omitempty"`
	// Notes say what the locker decided beyond the results.
	Notes []string `json:"notes,omitempty"`
	// Calls counts API calls by operation ("ec2:DescribeInstances",
	// "iam:PutRolePolicy", ...), every attempt included.
	Calls map[string]int `json:"calls"`
	// TotalCalls is the sum of Calls.
	TotalCalls int `json:"totalCalls"`
	// Retries is how many of TotalCalls were retries.
	Retries int `json:"retries"`
}

// count records one attempt of op.
func (r *Report) count(op string, retry bool) {
	if r.Calls == nil {
		r.Calls = map[string]int{}
	}
	r.Calls[op]++
	r.TotalCalls++
	if retry {
		r.Retries++
	}
}

// Count returns how many results have action a.
func (r Report) Count(a Action) int {
	n := 0
	for _, res := range r.Results {
		if res.Action == a {
			n++
		}
	}
	return n
}

// Err joins the errors of all failed results.
func (r Report) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}

// Handle parses an EventBridge event (see ParseEvent) and handles it. The
// returned error is non-nil when the event is invalid, when the event
// itself could not be processed, or when any role ended in ActionError;
// the Report is filled in as far as the locker got in every case.
func (l *Locker) Handle(ctx context.Context, raw json.RawMessage) (Report, error) {
	ev, err := ParseEvent(raw)
	if err != nil {
		return Report{Calls: map[string]int{}}, err
	}
	return l.HandleEvent(ctx, ev)
}

// HandleEvent handles a parsed event: a state change locks the roles of
// that instance, anything else reconciles every managed role.
func (l *Locker) HandleEvent(ctx context.Context, ev Event) (Report, error) {
	rep := Report{Event: ev, Calls: map[string]int{}}
	r := &run{l: l, report: &rep}
	var err error
	switch ev.Kind {
	case KindStateChange:
		err = r.stateChange(ctx, ev)
	case KindScheduled, KindAPICall:
		err = r.reconcileAll(ctx)
	default:
		err = fmt.Errorf("locker: handle event: %w: kind %q", ErrUnsupportedEvent, ev.Kind)
	}
	return rep, errors.Join(err, rep.Err())
}

// Reconcile updates the lock of every managed role (see the package doc
// for how they are found).
func (l *Locker) Reconcile(ctx context.Context) (Report, error) {
	return l.HandleEvent(ctx, Event{Kind: KindScheduled})
}

// LockRole updates the lock of one role by name, if it is managed.
func (l *Locker) LockRole(ctx context.Context, roleName string) (Report, error) {
	rep := Report{Calls: map[string]int{}}
	r := &run{l: l, report: &rep}
	var out *iam.GetRoleOutput
	err := r.call(ctx, "iam:GetRole", true, func(ctx context.Context) (err error) {
		out, err = l.cfg.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)})
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("locker: get role %s: %w", roleName, err)
	}
	if out.Role == nil {
		return rep, fmt.Errorf("locker: get role %s: empty answer", roleName)
	}
	if !l.managed(deref(out.Role.Path), out.Role.Tags) {
		rep.Skipped = append(rep.Skipped, Skip{Role: roleName, Reason: "not managed: " + l.optInRule()})
		return rep, nil
	}
	rep.Results = append(rep.Results, r.reconcileRole(ctx, roleName, nil))
	return rep, rep.Err()
}

// Managed reports whether a role with this path and these tags opts in:
// its path starts with ManagedPathPrefix, or it carries OptInTagKey =
// OptInTagValue. It applies the default Config.RolePath.
func Managed(path string, tags []iamtypes.Tag) bool {
	return strings.HasPrefix(path, ManagedPathPrefix) || taggedIn(tags)
}

// taggedIn reports whether tags carry the opt-in tag.
func taggedIn(tags []iamtypes.Tag) bool {
	for _, t := range tags {
		if deref(t.Key) == OptInTagKey && deref(t.Value) == OptInTagValue {
			return true
		}
	}
	return false
}

// managed applies Managed, or the path rule alone with PathOnly.
func (l *Locker) managed(path string, tags []iamtypes.Tag) bool {
	if strings.HasPrefix(path, l.cfg.RolePath) {
		return true
	}
	return !l.cfg.PathOnly && taggedIn(tags)
}

// optInRule describes the opt-in rule in force, for skip reasons.
func (l *Locker) optInRule() string {
	if l.cfg.PathOnly {
		return "path does not start with " + l.cfg.RolePath
	}
	return fmt.Sprintf("path does not start with %s and no %s=%s tag", l.cfg.RolePath, OptInTagKey, OptInTagValue)
}

// stateChange locks the roles of the instance in ev.
func (r *run) stateChange(ctx context.Context, ev Event) error {
	cfg := &r.l.cfg
	var inst *ec2types.Instance
	err := r.call(ctx, "ec2:DescribeInstances", true, func(ctx context.Context) error {
		out, err := cfg.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ev.InstanceID}})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for i := range res.Instances {
				if deref(res.Instances[i].InstanceId) == ev.InstanceID {
					inst = &res.Instances[i]
				}
			}
		}
		return nil
	})
	notFound := isNotFound(err)
	if err != nil && !notFound {
		return fmt.Errorf("locker: describe instance %s: %w", ev.InstanceID, err)
	}
	var profileARN string
	if inst != nil && inst.IamInstanceProfile != nil {
		profileARN = deref(inst.IamInstanceProfile.Arn)
	}
	if profileARN == "" {
		gone := inst == nil || ev.State == "terminated" || ev.State == "shutting-down"
		if !gone {
			r.report.Notes = append(r.report.Notes, fmt.Sprintf("instance %s has no instance profile: nothing to lock", ev.InstanceID))
			return nil
		}
		// The instance is gone or leaving without telling us its role; its
		// address must still be taken out of whichever lock lists it.
		r.report.Notes = append(r.report.Notes, fmt.Sprintf(
			"instance %s (%s) is gone or shows no instance profile: reconciling every managed role instead", ev.InstanceID, ev.State))
		return r.reconcileAll(ctx)
	}
	roles, err := r.profileRoles(ctx, profileARN)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("instance profile %s has no role: nothing to lock", profileARN))
	}
	for _, role := range roles {
		ok, err := r.isManaged(ctx, role)
		if err != nil {
			return err
		}
		if !ok {
			r.report.Skipped = append(r.report.Skipped, Skip{Role: deref(role.RoleName), Reason: "not managed: " + r.l.optInRule()})
			continue
		}
		r.report.Results = append(r.report.Results, r.reconcileRole(ctx, deref(role.RoleName), nil))
	}
	return nil
}

// profileName returns the name of an instance profile ARN
// (arn:aws:iam::123456789012:instance-profile/path/name).
func profileName(arn string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":instance-profile/")
	if !ok || rest == "" || strings.HasSuffix(rest, "/") {
		return "", fmt.Errorf("locker: %q is not an instance profile ARN", arn)
	}
	return rest[strings.LastIndex(rest, "/")+1:], nil
}

// profileRoles returns the roles of an instance profile.
func (r *run) profileRoles(ctx context.Context, arn string) ([]iamtypes.Role, error) {
	name, err := profileName(arn)
	if err != nil {
		return nil, err
	}
	var out *iam.GetInstanceProfileOutput
	err = r.call(ctx, "iam:GetInstanceProfile", true, func(ctx context.Context) (err error) {
		out, err = r.l.cfg.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("locker: get instance profile %s: %w", name, err)
	}
	if out.InstanceProfile == nil {
		return nil, fmt.Errorf("locker: get instance profile %s: empty answer", name)
	}
	return out.InstanceProfile.Roles, nil
}

// isManaged applies the opt-in rule to a role as returned by
// GetInstanceProfile, which carries the path but not the tags: the tags
// are fetched only when the path alone does not opt in.
func (r *run) isManaged(ctx context.Context, role iamtypes.Role) (bool, error) {
	if strings.HasPrefix(deref(role.Path), r.l.cfg.RolePath) {
		return true, nil
	}
	if r.l.cfg.PathOnly {
		return false, nil
	}
	if taggedIn(role.Tags) {
		return true, nil
	}
	name := deref(role.RoleName)
	var out *iam.GetRoleOutput
	err := r.call(ctx, "iam:GetRole", true, func(ctx context.Context) (err error) {
		out, err = r.l.cfg.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("locker: get role %s: %w", name, err)
	}
	if out.Role == nil {
		return false, fmt.Errorf("locker: get role %s: empty answer", name)
	}
	return r.l.managed(deref(out.Role.Path), out.Role.Tags), nil
}

// reconcileAll reconciles every managed role: first every role under
// Config.RolePath, then (unless PathOnly) every tagged role that a
// pending, running, stopping or stopped instance uses.
func (r *run) reconcileAll(ctx context.Context) error {
	cfg := &r.l.cfg
	done := map[string]bool{}
	seenProfiles := map[string]bool{}
	var marker *string
	for {
		var out *iam.ListRolesOutput
		err := r.call(ctx, "iam:ListRoles", false, func(ctx context.Context) (err error) {
			out, err = cfg.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(cfg.RolePath), Marker: marker})
			return err
		})
		if err != nil {
			return fmt.Errorf("locker: list roles under %s: %w", cfg.RolePath, err)
		}
		for _, role := range out.Roles {
			name := deref(role.RoleName)
			if done[name] || !strings.HasPrefix(deref(role.Path), cfg.RolePath) {
				continue
			}
			done[name] = true
			r.report.Results = append(r.report.Results, r.reconcileRole(ctx, name, seenProfiles))
		}
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	if cfg.PathOnly {
		return nil
	}
	return r.reconcileTagged(ctx, done, seenProfiles)
}

// reconcileTagged finds tagged roles through the instances that use them:
// IAM cannot list roles by tag, and ListRoles plus a ListRoleTags per role
// costs a call per role in the account. Instead every instance profile in
// use is resolved once (GetInstanceProfile) and each role outside the path
// is checked once (GetRole).
func (r *run) reconcileTagged(ctx context.Context, done, seenProfiles map[string]bool) error {
	var profiles []string
	err := r.describeInstances(ctx, []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: lockedStates}},
		func(in ec2types.Instance) {
			if in.IamInstanceProfile == nil {
				return
			}
			arn := deref(in.IamInstanceProfile.Arn)
			if arn != "" && !seenProfiles[arn] {
				seenProfiles[arn] = true
				profiles = append(profiles, arn)
			}
		})
	if err != nil {
		return fmt.Errorf("locker: list instances to find tagged roles: %w", err)
	}
	slices.Sort(profiles)
	checked := map[string]bool{}
	var errs []error
	for _, arn := range profiles {
		roles, err := r.profileRoles(ctx, arn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, role := range roles {
			name := deref(role.RoleName)
			if done[name] || checked[name] {
				continue
			}
			checked[name] = true
			ok, err := r.isManaged(ctx, role)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok {
				continue
			}
			done[name] = true
			r.report.Results = append(r.report.Results, r.reconcileRole(ctx, name, seenProfiles))
		}
	}
	return errors.Join(errs...)
}

// describeInstances pages through DescribeInstances with filters.
func (r *run) describeInstances(ctx context.Context, filters []ec2types.Filter, each func(ec2types.Instance)) error {
	var token *string
	for {
		var out *ec2.DescribeInstancesOutput
		err := r.call(ctx, "ec2:DescribeInstances", false, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
				Filters: filters, NextToken: token, MaxResults: aws.Int32(1000),
			})
			return err
		})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				each(in)
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return nil
		}
		token = out.NextToken
	}
}

// profileFilterChunk bounds the values of one EC2 filter.
const profileFilterChunk = 100

// roleState is everything about a role's instances that shapes its lock.
type roleState struct {
	profiles  []string
	instances []Instance
}

// describeRole finds the instances of every instance profile of a role.
func (r *run) describeRole(ctx context.Context, role string) (roleState, error) {
	var st roleState
	var marker *string
	for {
		var out *iam.ListInstanceProfilesForRoleOutput
		err := r.call(ctx, "iam:ListInstanceProfilesForRole", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{
				RoleName: aws.String(role), Marker: marker,
			})
			return err
		})
		if err != nil {
			return st, fmt.Errorf("locker: list instance profiles of role %s: %w", role, err)
		}
		for _, p := range out.InstanceProfiles {
			if arn := deref(p.Arn); arn != "" {
				st.profiles = append(st.profiles, arn)
			}
		}
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	slices.Sort(st.profiles)
	st.profiles = slices.Compact(st.profiles)
	for chunk := range slices.Chunk(st.profiles, profileFilterChunk) {
		filters := []ec2types.Filter{
			{Name: aws.String("iam-instance-profile.arn"), Values: chunk},
			{Name: aws.String("instance-state-name"), Values: lockedStates},
		}
		err := r.describeInstances(ctx, filters, func(in ec2types.Instance) {
			st.instances = append(st.instances, InstanceFromEC2(in))
		})
		if err != nil {
			return st, fmt.Errorf("locker: describe instances of role %s: %w", role, err)
		}
	}
	slices.SortFunc(st.instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	st.instances = slices.CompactFunc(st.instances, func(a, b Instance) bool { return a.ID == b.ID })
	return st, nil
}

// lockInput is what a lock is computed from.
type lockInput struct {
	live  int            // pending, running or stopping instances
	total int            // all instances
	addrs []netip.Prefix // public addresses of the live instances
	vpcs  []string       // VPCs of all instances
}

// input reduces a role's instances to the lock's inputs.
func (s roleState) input() lockInput {
	var in lockInput
	for _, i := range s.instances {
		in.total++
		if i.Live() {
			in.live++
			in.addrs = append(in.addrs, i.Addresses...)
		}
		if vpcIDPattern.MatchString(i.VPC) {
			in.vpcs = append(in.vpcs, i.VPC)
		}
	}
	in.addrs = uniquePrefixes(in.addrs)
	slices.Sort(in.vpcs)
	in.vpcs = slices.Compact(in.vpcs)
	return in
}

// equal reports whether two inputs give the same lock.
func (a lockInput) equal(b lockInput) bool {
	return (a.live > 0) == (b.live > 0) && (a.total > 0) == (b.total > 0) &&
		slices.Equal(a.addrs, b.addrs) && slices.Equal(a.vpcs, b.vpcs)
}

// candidate is one lock the locker may write, finest first.
type candidate struct {
	mode      Mode
	fallback  bool
	reason    string
	sourceIPs []string
	vpcs      []string
	doc       []byte
	size      int
}

// plan lists the locks for in, finest first: the exact lock, then (size
// fallback) each aggregation level that shortens the list, then VPC
// endpoints only, then deny-all. Every later candidate denies at least what
// the earlier ones deny. lastVPCs are the VPCs of the current lock, used
// when the role has no instance at all.
func plan(in lockInput, lastVPCs []string) ([]candidate, error) {
	var out []candidate
	add := func(c candidate) error {
		var doc lockpolicy.Document
		if c.mode == ModeDenyAll {
			doc = DenyAllDocument()
		} else {
			d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: c.sourceIPs, VPCs: c.vpcs}, lockpolicy.Options{})
			if err != nil {
				return fmt.Errorf("locker: render %s lock: %w", c.mode, err)
			}
			doc = d
		}
		b, err := doc.JSON()
		if err != nil {
			return err
		}
		c.doc, c.size = b, doc.Size()
		if c.sourceIPs == nil {
			c.sourceIPs = []string{}
		}
		if c.vpcs == nil {
			c.vpcs = []string{}
		}
		out = append(out, c)
		return nil
	}
	denyAll := func(fallback bool, reason string) error {
		return add(candidate{mode: ModeDenyAll, fallback: fallback, reason: reason})
	}
	const tooLarge = "the finer locks exceed the inline policy size quota"

	switch {
	case len(in.addrs) > 0:
		prev := in.addrs
		if err := add(candidate{mode: ModeExact, sourceIPs: prefixStrings(prev), vpcs: in.vpcs}); err != nil {
			return nil, err
		}
		for _, lvl := range AggregationLevels {
			agg := Aggregate(in.addrs, lvl)
			if slices.Equal(agg, prev) {
				continue
			}
			prev = agg
			reason := fmt.Sprintf("%d addresses do not fit the inline policy size quota: IPv4 merged into /%d and IPv6 into /%d networks where they share one",
				len(in.addrs), lvl.IPv4Bits, lvl.IPv6Bits)
			if err := add(candidate{mode: ModeAggregated, fallback: true, reason: reason, sourceIPs: prefixStrings(agg), vpcs: in.vpcs}); err != nil {
				return nil, err
			}
		}
		if len(in.vpcs) > 0 {
			if err := add(candidate{mode: ModeVPCEndpointsOnly, fallback: true, vpcs: in.vpcs,
				reason: "even /16 (IPv4) and /48 (IPv6) networks exceed the inline policy size quota: VPC endpoints only"}); err != nil {
				return nil, err
			}
		}
		return out, denyAll(true, tooLarge)
	case in.live > 0 && len(in.vpcs) > 0:
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: in.vpcs,
			reason: "the running instances have no public address: VPC endpoints only"}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	case in.live == 0 && len(in.vpcs) > 0:
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: in.vpcs,
			reason: "no running instance: VPC endpoints of the stopped instances' VPCs only"}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	case in.total == 0 && len(lastVPCs) > 0:
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: lastVPCs,
			reason: "no instance: VPC endpoints of the VPCs of the current lock only"}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	default:
		return out, denyAll(false, "no instance and no known VPC: deny every call not made by an AWS service")
	}
}

// rolePolicies is what a role's inline policies mean to the locker.
type rolePolicies struct {
	current    []byte // the lock now in place, nil if none or unreadable
	exists     bool   // a lock policy is in place, readable or not
	othersSize int    // IAM characters used by the other inline policies
	notes      []string
}

// readPolicies reads every inline policy of a role.
func (r *run) readPolicies(ctx context.Context, role string) (rolePolicies, error) {
	var rp rolePolicies
	var names []string
	var marker *string
	for {
		var out *iam.ListRolePoliciesOutput
		err := r.call(ctx, "iam:ListRolePolicies", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(role), Marker: marker})
			return err
		})
		if err != nil {
			return rp, fmt.Errorf("locker: list inline policies of role %s: %w", role, err)
		}
		names = append(names, out.PolicyNames...)
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		var out *iam.GetRolePolicyOutput
		err := r.call(ctx, "iam:GetRolePolicy", false, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
			return err
		})
		if errorCode(err) == codeNoSuchEntity {
			continue // deleted since it was listed
		}
		if err != nil {
			return rp, fmt.Errorf("locker: get inline policy %s of role %s: %w", name, role, err)
		}
		if name == r.l.cfg.PolicyName {
			rp.exists = true
		}
		doc, err := DecodePolicyDocument(deref(out.PolicyDocument))
		if err != nil {
			if name == r.l.cfg.PolicyName {
				rp.notes = append(rp.notes, fmt.Sprintf("the current %s policy cannot be read (%v): it will be replaced", name, err))
				continue
			}
			return rp, fmt.Errorf("locker: inline policy %s of role %s: %w", name, role, err)
		}
		if name == r.l.cfg.PolicyName {
			rp.current = doc
			continue
		}
		rp.othersSize += PolicySize(doc)
		if looksLikeLock(doc) {
			rp.notes = append(rp.notes, fmt.Sprintf(
				"inline policy %s also carries lock statements; the locker does not maintain it, so its addresses can go stale and deny the instances: name the construct's lock %q",
				name, r.l.cfg.PolicyName))
		}
	}
	return rp, nil
}

// reconcileRole computes, compares, writes and verifies one role's lock.
// seenProfiles, if not nil, collects the role's instance profile ARNs.
func (r *run) reconcileRole(ctx context.Context, role string, seenProfiles map[string]bool) Result {
	res := Result{Role: role, Addresses: []string{}, SourceIPs: []string{}, VPCs: []string{}}
	fail := func(err error) Result {
		res.Action, res.Err, res.Error = ActionError, err, err.Error()
		return res
	}
	st, err := r.describeRole(ctx, role)
	for _, p := range st.profiles {
		if seenProfiles != nil {
			seenProfiles[p] = true
		}
	}
	if err != nil {
		return fail(err)
	}
	pols, err := r.readPolicies(ctx, role)
	if err != nil {
		return fail(err)
	}
	res.Notes = pols.notes
	res.Budget = lockpolicy.MaxRolePolicySize - pols.othersSize
	current := pols.current
	for {
		res.Passes++
		in := st.input()
		res.Instances = st.instances
		res.Addresses = prefixStrings(in.addrs)
		cands, err := plan(in, LockedVPCs(current))
		if err != nil {
			return fail(err)
		}
		first := slices.IndexFunc(cands, func(c candidate) bool { return c.size <= res.Budget })
		if first < 0 {
			return fail(fmt.Errorf("locker: lock role %s: no lock fits: the other inline policies use %d of %d characters, the smallest lock needs %d",
				role, pols.othersSize, lockpolicy.MaxRolePolicySize, cands[len(cands)-1].size))
		}
		if !samePolicy(current, cands[first].doc) {
			// About to write: not while CloudFormation deletes the role.
			skip, err := r.checkStack(ctx, role, &res, pols.exists || current != nil, in.total > 0)
			if err != nil {
				return fail(err)
			}
			if skip {
				return res
			}
		}
		chosen, wrote, err := r.write(ctx, role, cands[first:], current)
		res.Mode, res.Reason = chosen.mode, chosen.reason
		res.SourceIPs, res.VPCs, res.Size = chosen.sourceIPs, chosen.vpcs, chosen.size
		if err != nil {
			return fail(err)
		}
		res.Written = res.Written || wrote
		switch {
		case chosen.fallback:
			res.Action = ActionFallback
		case res.Written:
			res.Action = ActionWritten
		default:
			res.Action = ActionUnchanged
		}
		if !wrote {
			return res
		}
		current = chosen.doc
		if res.Passes >= r.l.cfg.MaxPasses {
			res.Notes = append(res.Notes, fmt.Sprintf("instances kept changing during %d passes; the next event or schedule will catch up", res.Passes))
			return res
		}
		// Verify: another invocation may have written a lock computed from
		// an older view between our describe and our write. Re-describe; if
		// the instances changed, compute and write again.
		next, err := r.describeRole(ctx, role)
		if err != nil {
			res.Action = ActionError
			res.Err = fmt.Errorf("locker: verify lock of role %s after writing it: %w", role, err)
			res.Error = res.Err.Error()
			return res
		}
		if next.input().equal(in) {
			return res
		}
		st = next
	}
}

// write puts the first candidate that IAM accepts, unless the current
// lock already means the same. IAM's LimitExceeded (the role's inline
// policies got larger since they were read) moves on to the next, coarser
// candidate; any other error stops.
func (r *run) write(ctx context.Context, role string, cands []candidate, current []byte) (candidate, bool, error) {
	if samePolicy(current, cands[0].doc) {
		return cands[0], false, nil
	}
	var last error
	for i, c := range cands {
		if i > 0 {
			c.fallback = true
		}
		err := r.call(ctx, "iam:PutRolePolicy", true, func(ctx context.Context) error {
			_, err := r.l.cfg.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
				RoleName: aws.String(role), PolicyName: aws.String(r.l.cfg.PolicyName), PolicyDocument: aws.String(string(c.doc)),
			})
			return err
		})
		if err == nil {
			return c, true, nil
		}
		if errorCode(err) != codeLimitExceeded {
			return c, false, fmt.Errorf("locker: put lock on %s: %w", role, err)
		}
		last = err
	}
	return cands[len(cands)-1], false, fmt.Errorf("locker: put lock on %s: IAM refused every lock as too large: %w", role, last)
}

// ConfigFromEnv reads the locker function's Config from its environment: the managed role path
// (contract.EnvRolePath) and the lock's policy name (contract.EnvPolicyName), both set by
// constructs/locker. A missing variable is an error, never the default: a renamed variable must
// not make the function manage another path than its IAM permissions name. Only the path opts a
// role in (PathOnly), as the construct's permissions allow nothing else.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		RolePath:   strings.TrimSpace(getenv(contract.EnvRolePath)),
		PolicyName: strings.TrimSpace(getenv(contract.EnvPolicyName)),
		PathOnly:   true,
	}
	for _, v := range []struct{ name, value string }{{contract.EnvRolePath, c.RolePath}, {contract.EnvPolicyName, c.PolicyName}} {
		if v.value == "" {
			return Config{}, fmt.Errorf("locker: %s is not set (the locker construct sets it)", v.name)
		}
	}
	return c, nil
}
