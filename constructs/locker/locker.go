// Package locker provides the Locker construct: a Go Lambda that keeps locks true when
// addresses change. It is triggered by EC2 instance state changes (running, stopped,
// terminated) and by a schedule that reconciles every managed role, and rewrites the inline lock
// policy of each managed role from the addresses of the instances that use it.
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

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Package is the import path of the locker Lambda's package main.
const Package = "github.com/defenders-cdk/defenders/lambda/locker"

// Environment variables the construct sets and the Lambda reads.
const (
	EnvRolePath      = contract.EnvRolePath
	EnvPolicyName    = contract.EnvPolicyName
	MetricsNamespace = contract.LockerMetricsNamespace
)

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
	// Code overrides the function code (tests). Default: built from Package with go build.
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
	return nil
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
	} {
		role.AddToPolicy(awsiam.NewPolicyStatement(st))
	}

	env := map[string]*string{
		EnvRolePath:   jsii.String(path),
		EnvPolicyName: jsii.String(PolicyName),
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
		Description: jsii.String("EC2 instance state changes that move or drop an instance's address"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.ec2"),
			DetailType: jsii.Strings("EC2 Instance State-change Notification"),
			Detail:     &map[string]interface{}{"state": []interface{}{"running", "stopped", "terminated"}},
		},
		Targets: &[]awsevents.IRuleTarget{target},
	})
	awsevents.NewRule(l, jsii.String("Reconcile"), &awsevents.RuleProps{
		Description: jsii.String("Reconciles every managed role: repairs missed events and drift"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(every.Minutes()))),
		Targets:     &[]awsevents.IRuleTarget{target},
	})

	alarms := []awscloudwatch.Alarm{
		golambda.NewAlarm(l, "Errors", "The Defenders locker failed: some locks may be stale",
			l.fn.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(15))})),
		golambda.NewAlarm(l, "FallbackLocks", "A role has too many addresses for its inline policy: the locker wrote a coarser lock",
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
