// Package locker provides the Locker construct: a Go Lambda that keeps locks true when
// addresses change. It is triggered by EC2 instance state changes (running, stopped,
// shutting-down, terminated), by the CloudTrail events of the EC2 calls that change an
// instance's addresses or instance profile without a state change (Elastic IPs, IPv6
// addresses, network interfaces, instance profiles: trigger.AddressAPICalls; they reach the
// locker only if a CloudTrail trail logs management events), and by a schedule that reconciles
// every managed role. It rewrites the inline lock policy of each managed role from the addresses
// of the instances that use it, in the mode the role's defenders:lock-mode tag names, plus the
// app's Trust.
//
// Which roles it manages, and why it is safe: roles under the IAM path /defenders/ (RolePath).
// The locker's IAM permissions to read and write inline policies are scoped to
// arn:aws:iam::<account>:role/defenders/* and nothing else, so it cannot write a policy on any
// other role (tested with the IAM evaluator). Within that path it can write any inline policy:
// its code is the trust boundary, which is why it is a small Go binary built from this repo and
// why a reviewer should treat the /defenders/ path as privileged (create roles there only from
// pipelines, and deny iam:CreateRole / iam:UpdateRole with that path to everyone else).
package locker

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/golambda"
	"github.com/defenders-cdk/defenders/constructs/lock"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/locker/trigger"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Package is the import path of the locker Lambda's package main.
const Package = "github.com/defenders-cdk/defenders/lambda/locker"

// Environment variables the construct sets and the Lambda reads.
const (
	EnvRolePath              = contract.EnvRolePath
	EnvPolicyName            = contract.EnvPolicyName
	EnvTrustedEgressPrefixes = contract.EnvTrustedEgressPrefixes
	EnvSharedVPCEndpoints    = contract.EnvSharedVPCEndpoints
	MetricsNamespace         = contract.LockerMetricsNamespace
)

// DenyAllPolicyName is the AWS managed policy the locker attaches to a managed role whose other
// inline policies leave no room for even the deny-all lock, and the only policy it may attach.
const DenyAllPolicyName = "AWSDenyAll"

// Defaults.
const (
	// RolePath is the IAM path of the roles the locker manages.
	RolePath = contract.LockerRolePath
	// PolicyName is the inline policy the locker writes on each managed role.
	PolicyName = contract.LockPolicyName
)

// Props configures a Locker. The zero value is valid.
type Props struct {
	// RolePath is the IAM path of managed roles. Default RolePath. Must start and end with "/"
	// and not be "/" (that would be every role).
	RolePath string
	// Schedule is how often every managed role is reconciled. Default 15 minutes.
	Schedule time.Duration
	// ReservedConcurrency reserves (and caps) the function's concurrency. Default 0: no
	// reservation, which deploys in any account (Lambda refuses a reservation that leaves less
	// than 10 of the account's quota unreserved; a new account's quota is 10). The locker's
	// writes are idempotent and converge, so concurrent runs are safe without a cap.
	ReservedConcurrency int
	// AlarmTopicARN receives the alarms (errors, fallback locks, dead letters). Default: none
	// (the alarms still show in the CloudWatch console). The app passes the detector's topic.
	AlarmTopicARN string
	// Lockdown makes the function lock its own credentials to the address AWS sees for it
	// (internal/lockdown). Default false.
	Lockdown bool
	// Trust is what the app trusts besides each instance's own position (central egress
	// prefixes, shared VPC endpoints): the locker renders it into every lock it writes, as the
	// lock constructs do. Give it the Trust the app's locks get. Default: nothing. Literal values
	// are validated (tokens pass) and set as DEFENDERS_TRUSTED_EGRESS_PREFIXES and
	// DEFENDERS_SHARED_VPC_ENDPOINTS.
	Trust lock.Trust
	// Code is the function's code: a build of Package (the construct's environment and
	// permissions are that program's). Default: built from Package with a local go build
	// (constructs/internal/golambda) and staged as a CDK asset of this stack.
	//
	// Give awslambda.Code_FromBucket to take it from an S3 location instead, for a stack that
	// cannot have CDK assets: a StackSet's member template is deployed into accounts that are
	// not CDK-bootstrapped, so constructs/organization copies the bundled locker into a bucket
	// of the Region the member lockers run in and gives them Code_FromBucket(bucket named with
	// Fn::Sub, content-addressed key). Tests give a stand-in asset.
	Code awslambda.Code
}

// Locker is the lock-keeping Lambda and its wiring.
type Locker interface {
	constructs.Construct
	// Function is the locker Lambda.
	Function() awslambda.Function
	// DeadLetterQueue holds events the locker could not process.
	DeadLetterQueue() awssqs.Queue
}

type locker struct {
	constructs.Construct
	fn  awslambda.Function
	dlq awssqs.Queue
}

func (l *locker) Function() awslambda.Function  { return l.fn }
func (l *locker) DeadLetterQueue() awssqs.Queue { return l.dlq }

var pathRE = regexp.MustCompile(`^/[A-Za-z0-9+=,.@_-]+(/[A-Za-z0-9+=,.@_-]+)*/$`)

// Validate checks props and returns an error that names the offending field.
func (p *Props) Validate() error {
	switch {
	case p.RolePath != "" && !pathRE.MatchString(p.RolePath):
		return fmt.Errorf("locker: Props.RolePath %q must look like /defenders/ (not /, which is every role)", p.RolePath)
	case p.Schedule != 0 && (p.Schedule < time.Minute || p.Schedule > 24*time.Hour):
		return fmt.Errorf("locker: Props.Schedule %v is out of range 1m..24h", p.Schedule)
	case p.ReservedConcurrency < 0 || p.ReservedConcurrency > 100:
		return fmt.Errorf("locker: Props.ReservedConcurrency %d is out of range 0..100 (0: no reservation)", p.ReservedConcurrency)
	}
	if _, err := lockpolicy.Trust(p.Trust).Validate(lock.IsToken); err != nil {
		return fmt.Errorf("locker: Props.Trust: %w", err)
	}
	return nil
}

// DenyAllPolicyARN is the ARN of AWSDenyAll in stack's partition.
func DenyAllPolicyARN(stack awscdk.Stack) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), stack.Partition(), jsii.String(":iam::aws:policy/" + DenyAllPolicyName),
	})
}

// StateChangePattern is the EventBridge pattern of the instance state changes the locker
// handles (trigger.States).
func StateChangePattern() *awsevents.EventPattern {
	return &awsevents.EventPattern{
		Source:     jsii.Strings(trigger.SourceEC2),
		DetailType: jsii.Strings(trigger.DetailTypeStateChange),
		Detail:     &map[string]interface{}{"state": toAny(trigger.States)},
	}
}

// AddressChangePattern is the EventBridge pattern of the CloudTrail events of the EC2 calls that
// change an instance's addresses or instance profile without a state change: exactly the calls
// the locker parses (trigger.AddressAPICalls), successful ones only (a failed call changed
// nothing). They are write management events: the rule's default state, ENABLED, receives them
// whenever a CloudTrail trail in the account logs management events (read/write "All" or
// "WriteOnly"); without such a trail nothing arrives and the schedule alone catches these
// changes.
func AddressChangePattern() *awsevents.EventPattern {
	return &awsevents.EventPattern{
		Source:     jsii.Strings(trigger.SourceEC2),
		DetailType: jsii.Strings(trigger.DetailTypeAPICall),
		Detail: &map[string]interface{}{
			"eventSource": []interface{}{trigger.EventSourceEC2},
			"eventName":   toAny(trigger.AddressAPICalls),
			"errorCode":   []interface{}{map[string]interface{}{"exists": false}},
		},
	}
}

func toAny(s []string) []interface{} {
	out := make([]interface{}, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// ManagedRoleARN is the ARN pattern of the roles the locker may write, in stack's account.
func ManagedRoleARN(stack awscdk.Stack, path string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), stack.Partition(), jsii.String(":iam::"), stack.Account(), jsii.String(":role" + path + "*"),
	})
}

// New creates a Locker.
func New(scope constructs.Construct, id string, props *Props) (Locker, error) {
	if props == nil {
		props = &Props{}
	}
	if err := props.Validate(); err != nil {
		return nil, err
	}
	path, every, conc := props.RolePath, props.Schedule, props.ReservedConcurrency
	if path == "" {
		path = RolePath
	}
	if every == 0 {
		every = 15 * time.Minute
	}
	code := props.Code
	if code == nil {
		var err error
		if code, err = golambda.Code(scope, Package); err != nil {
			// Name the construct: the build error alone says which package failed, not where.
			return nil, fmt.Errorf("locker %s/%s: building its Lambda: %w", *scope.Node().Path(), id, err)
		}
	}
	l := &locker{}
	constructs.NewConstruct_Override(l, scope, jsii.String(id))
	stack := awscdk.Stack_Of(l)

	l.dlq = golambda.NewDeadLetterQueue(l, "DeadLetters")
	logs := golambda.NewLogGroup(l, "Logs")
	role, lockEnv := golambda.NewRole(l, "Role", "Defenders locker: rewrites the lock of roles under "+path, props.Lockdown)
	managed := ManagedRoleARN(stack, path)
	for _, st := range []*awsiam.PolicyStatementProps{
		{
			Sid:       jsii.String("WriteOwnLogs"), // structured logs and embedded metrics
			Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
			Resources: &[]*string{logs.LogGroupArn()},
		},
		{
			// Addresses and VPCs of the instances that use a managed role. EC2 Describe* actions
			// support no resource-level permissions; they are read-only.
			Sid:       jsii.String("ReadInstances"),
			Actions:   jsii.Strings("ec2:DescribeInstances"),
			Resources: jsii.Strings("*"),
		},
		{
			// nat-egress locks: the route of an instance's subnet to the internet (its route table,
			// or the VPC's main one) and the public addresses of the NAT gateway it points to.
			// EC2 Describe* actions support no resource-level permissions ("*" is the only
			// resource); they are read-only.
			Sid:       jsii.String("ReadEgressRoutes"),
			Actions:   jsii.Strings("ec2:DescribeRouteTables", "ec2:DescribeNatGateways"),
			Resources: jsii.Strings("*"),
		},
		{
			// CloudTrail events that name only an Elastic IP (an allocation or association id):
			// which instance holds it. No resource-level permissions ("*"); read-only.
			Sid:       jsii.String("ReadElasticIPs"),
			Actions:   jsii.Strings("ec2:DescribeAddresses"),
			Resources: jsii.Strings("*"),
		},
		{
			// Finding managed roles for the schedule: ListRoles has no resource-level permission;
			// it is read-only and returns names and paths, not policies.
			Sid:       jsii.String("ListRoles"),
			Actions:   jsii.Strings("iam:ListRoles"),
			Resources: jsii.Strings("*"),
		},
		{
			// From an instance's profile to its role: read-only, on instance profiles only.
			Sid:     jsii.String("ReadInstanceProfiles"),
			Actions: jsii.Strings("iam:GetInstanceProfile", "iam:ListInstanceProfilesForRole"),
			Resources: &[]*string{
				awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), stack.Partition(), jsii.String(":iam::"), stack.Account(), jsii.String(":instance-profile/*")}),
				managed,
			},
		},
		{
			// Destroy safety: before writing a lock, the locker asks which stack owns the role and
			// whether that stack (or its root) is being deleted; writing then would make
			// CloudFormation's DeleteRole fail (DeleteConflict). Read-only, stacks of this
			// account and region only.
			Sid:     jsii.String("ReadStacks"),
			Actions: jsii.Strings("cloudformation:DescribeStackResources", "cloudformation:DescribeStacks"),
			Resources: &[]*string{awscdk.Fn_Join(jsii.String(""), &[]*string{
				jsii.String("arn:"), stack.Partition(), jsii.String(":cloudformation:"), stack.Region(), jsii.String(":"),
				stack.Account(), jsii.String(":stack/*"),
			})},
		},
		{
			// The only write: the inline lock policy, and only on roles under the managed path.
			// Reading the current policies lets it write only when something changed and keep
			// within the role's inline-policy size budget.
			Sid:       jsii.String("MaintainLocksOnManagedRolesOnly"),
			Actions:   jsii.Strings("iam:GetRolePolicy", "iam:ListRolePolicies", "iam:PutRolePolicy"),
			Resources: &[]*string{managed},
		},
		{
			// The lock's mode: the defenders:lock-mode tag the lock constructs put on the role
			// (nat-egress, vpc-endpoints-only, ...), so that the locker renders the same mode
			// instead of guessing it from the instances' addresses. ListRoleTags because
			// ListRoles does not return tags. Read-only, managed roles only.
			Sid:       jsii.String("ReadLockModes"),
			Actions:   jsii.Strings("iam:ListRoleTags"),
			Resources: &[]*string{managed},
		},
		{
			// Whether AWSDenyAll is attached to a managed role that has no lock (the locker asks
			// no other role). Read-only, managed roles only.
			Sid:       jsii.String("ReadManagedPolicies"),
			Actions:   jsii.Strings("iam:ListAttachedRolePolicies"),
			Resources: &[]*string{managed},
		},
		{
			// Last resort: a managed role whose other inline policies leave no room for even the
			// deny-all lock (IAM counts 10,240 characters over all of a role's inline policies)
			// would otherwise stay unlocked. The locker attaches the AWS managed policy AWSDenyAll
			// (deny everything) instead and alarms. The condition allows that one policy ARN and
			// no other, so this cannot grant a managed role anything.
			Sid:       jsii.String("AttachDenyAllOnManagedRolesOnly"),
			Actions:   jsii.Strings("iam:AttachRolePolicy"),
			Resources: &[]*string{managed},
			Conditions: &map[string]interface{}{
				"ArnEquals": map[string]interface{}{"iam:PolicyARN": DenyAllPolicyARN(stack)},
			},
		},
		{
			// Undo of the last resort: once an inline lock fits again, the locker detaches the
			// AWSDenyAll it attached to a role without a lock, so that the role's instances work
			// again. Same scoping: that one policy ARN, managed roles only; detaching can only
			// remove a deny.
			Sid:       jsii.String("DetachDenyAllOnManagedRolesOnly"),
			Actions:   jsii.Strings("iam:DetachRolePolicy"),
			Resources: &[]*string{managed},
			Conditions: &map[string]interface{}{
				"ArnEquals": map[string]interface{}{"iam:PolicyARN": DenyAllPolicyARN(stack)},
			},
		},
	} {
		role.AddToPolicy(awsiam.NewPolicyStatement(st))
	}

	env := map[string]*string{
		EnvRolePath:   jsii.String(path),
		EnvPolicyName: jsii.String(PolicyName),
	}
	// The Trust as given (validated above): tokens stay tokens and resolve at deploy time; the
	// Lambda parses and validates the resolved values at its start (a bad one fails the start).
	if len(props.Trust.EgressPrefixes) > 0 {
		env[EnvTrustedEgressPrefixes] = jsii.String(strings.Join(props.Trust.EgressPrefixes, ","))
	}
	if len(props.Trust.SharedVPCEndpoints) > 0 {
		env[EnvSharedVPCEndpoints] = jsii.String(strings.Join(props.Trust.SharedVPCEndpoints, ","))
	}
	for k, v := range lockEnv {
		env[k] = v
	}
	l.fn = golambda.NewFunction(l, "Function", &golambda.FunctionOptions{
		Code: code, Role: role, Timeout: awscdk.Duration_Minutes(jsii.Number(5)),
		ReservedConcurrency: conc, LogGroup: logs, DeadLetterQueue: l.dlq,
		Description: "Defenders locker: keeps instance-role locks true when addresses change",
		Env:         env,
	})
	target := awseventstargets.NewLambdaFunction(l.fn, &awseventstargets.LambdaFunctionProps{
		DeadLetterQueue: l.dlq, RetryAttempts: jsii.Number(4), MaxEventAge: awscdk.Duration_Hours(jsii.Number(1)),
	})
	awsevents.NewRule(l, jsii.String("StateChanges"), &awsevents.RuleProps{
		Description:  jsii.String("EC2 instance state changes that move or drop an instance's address"),
		EventPattern: StateChangePattern(),
		Targets:      &[]awsevents.IRuleTarget{target},
	})
	awsevents.NewRule(l, jsii.String("AddressChanges"), &awsevents.RuleProps{
		Description:  jsii.String("EC2 calls (CloudTrail) that change an instance's addresses or instance profile without a state change"),
		EventPattern: AddressChangePattern(),
		Targets:      &[]awsevents.IRuleTarget{target},
	})
	awsevents.NewRule(l, jsii.String("Reconcile"), &awsevents.RuleProps{
		Description: jsii.String("Reconciles every managed role: repairs missed events and drift"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(every.Minutes()))),
		Targets:     &[]awsevents.IRuleTarget{target},
	})

	alarms := []awscloudwatch.Alarm{
		golambda.NewAlarm(l, "Errors", "The Defenders locker failed: some locks may be stale",
			l.fn.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(15))})),
		golambda.NewAlarm(l, "FallbackLocks", "A role is locked more narrowly than its mode asks: too many addresses for its inline policy (a coarser lock, or AWSDenyAll attached), or a lock mode tag the locker does not know",
			awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace: jsii.String(MetricsNamespace), MetricName: jsii.String("FallbackLocks"),
				Statistic: jsii.String("Sum"), Period: awscdk.Duration_Minutes(jsii.Number(15)),
			})),
		golambda.NewAlarm(l, "DeadLetterAlarm", "Locker events are in the dead-letter queue",
			l.dlq.MetricApproximateNumberOfMessagesVisible(nil)),
	}
	if props.AlarmTopicARN != "" {
		action := awscloudwatchactions.NewSnsAction(awssns.Topic_FromTopicArn(l, jsii.String("AlarmTopic"), jsii.String(props.AlarmTopicARN)))
		for _, a := range alarms {
			a.AddAlarmAction(action)
		}
	}
	return l, nil
}
