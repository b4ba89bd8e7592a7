// Package detector provides the Detector construct: a Go Lambda that reads CloudTrail and alerts
// (SNS) when EC2 instance-role credentials are used from an address their instance does not
// have. Events are filtered as early as the source allows, so that only instance-role calls
// made by callers other than AWS services invoke the function:
//
//   - an EventBridge rule on "AWS API Call via CloudTrail" in the state
//     ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, which delivers read-only management events
//     (Describe*, List*, Get*: what credential exfiltration starts with) as well as writes;
//   - optionally a subscription filter on an existing CloudTrail log group, for trails whose
//     events should also be read from CloudWatch Logs (the same call seen on both paths is
//     judged twice; the dedupe window suppresses the second alert within one execution environment).
//
// Requirements: a CloudTrail trail with management events (read and write) must log in the
// account; EventBridge delivers each event in the region where the call was made (global
// services such as IAM in us-east-1), so deploy one detector per region you run instances in,
// plus us-east-1 for calls to global services. Records of other accounts are skipped and
// counted (unless in organisation mode, below), records of instances in other regions are
// judged against those regions.
//
// Nothing is lost: failed publishes are retried in the function, what still fails goes to the
// dead-letter queue, failed invocations are retried by Lambda and then land in the same queue,
// and alarms fire on function errors and on anything in the queue.
//
// Give the detector the app's Trust (Props.Trust, the lock.Trust of the app's locks): it then
// accepts what the locks admit besides each instance's own position, calls from the trusted
// egress prefixes and, through the shared VPC endpoints, from the instance's own private IPv4.
//
// # Organisation mode
//
// With Props.Organization the detector, deployed in a security account, is the central
// detector of an AWS Organization. The member accounts forward their instance sessions to a
// central event bus (Organization.Bus; their rules use InstanceSessionPattern and RuleState),
// on which the detector gets a rule with the same pattern and state, and every member account
// has a read-only role (Organization.MemberRoleName, at path "/", from the member template)
// that trusts the detector's role within the organisation. The function may assume that role
// name in accounts of the organisation only (a Condition on aws:ResourceOrgID), and judges
// each record against the inventory of the account whose credentials made the call, in the
// region the instance lives in, through that account's member role. An account whose role
// cannot be assumed (its member stack is missing) raises an AccountNotCovered alert, once per
// account and dedupe window; STS throttling leaves records undecided and retried. Alerts name
// the account (account) and region (region, instance_region). See "Organisation mode" in
// internal/detect for the semantics and internal/detectorfn for the limits and metrics: per
// account, only the alerts get a CloudWatch dimension (a metric per account costs USD 0.30 a
// month each); every other figure is one metric for the function, with the batch's account as
// a log property.
package detector

import (
	"errors"
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
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogsdestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/golambda"
	"github.com/defenders-cdk/defenders/constructs/lock"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
)

// Package is the import path of the detector Lambda's package main.
const Package = "github.com/defenders-cdk/defenders/lambda/detector"

// Environment variables the construct sets and the Lambda reads.
const (
	EnvTopicARN      = contract.EnvTopicARN
	EnvDLQURL        = contract.EnvDLQURL
	EnvDedupeWindow  = contract.EnvDedupeWindow
	EnvInventoryTTL  = contract.EnvInventoryTTL
	EnvSelfRoleARN   = contract.EnvSelfRoleARN
	EnvRegions       = contract.EnvRegions
	MetricsNamespace = contract.DetectorMetricsNamespace

	EnvTrustedEgressPrefixes = contract.EnvTrustedEgressPrefixes
	EnvSharedVPCEndpoints    = contract.EnvSharedVPCEndpoints

	EnvOrganizationID = contract.EnvOrganizationID
	EnvMemberRoleName = contract.EnvMemberRoleName
)

// InstanceSessionPattern is the EventBridge pattern of the detector's rules: CloudTrail API
// calls made with an assumed-role session whose name is an instance id (instance-profile
// credentials), not by an AWS service. The member accounts' rules that forward to the central
// bus of an Organization use it too, so that the bus carries what the detector reads and no
// more (set their state to RuleState as well).
func InstanceSessionPattern() *awsevents.EventPattern {
	return &awsevents.EventPattern{
		// Only events AWS services emit: PutEvents refuses a source that starts with "aws.", so a
		// principal allowed to write to the organisation's central bus cannot inject a forged
		// CloudTrail record (the detail-type is free text).
		Source:     awsevents.Match_Prefix(jsii.String("aws.")),
		DetailType: jsii.Strings("AWS API Call via CloudTrail"),
		Detail: &map[string]interface{}{
			"userIdentity": map[string]interface{}{
				"type":        []interface{}{"AssumedRole"},
				"principalId": []interface{}{map[string]interface{}{"wildcard": "*:i-*"}},
				"invokedBy":   []interface{}{map[string]interface{}{"exists": false}},
			},
		},
	}
}

// EventPattern is InstanceSessionPattern (its older name).
func EventPattern() *awsevents.EventPattern { return InstanceSessionPattern() }

// RuleState is the EventBridge rule state that delivers read-only CloudTrail management events
// as well as write ones (EventBridge's default, ENABLED, delivers only the latter).
const RuleState = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

// alarmConditions limits a service-principal grant to CloudWatch alarms of stack's account and
// region.
func alarmConditions(stack awscdk.Stack) *map[string]interface{} {
	return &map[string]interface{}{
		"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()},
		"ArnLike": map[string]interface{}{"aws:SourceArn": awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("arn:"), stack.Partition(), jsii.String(":cloudwatch:"), stack.Region(), jsii.String(":"),
			stack.Account(), jsii.String(":alarm:*"),
		})},
	}
}

// SubscriptionFilterPattern is the CloudWatch Logs filter for CloudTrail log groups, equivalent
// to EventPattern.
const SubscriptionFilterPattern = `{ ($.userIdentity.type = "AssumedRole") && ($.userIdentity.principalId = "*:i-*") && ($.userIdentity.invokedBy NOT EXISTS) }`

// Props configures a Detector. The zero value is valid.
type Props struct {
	// AlertEmail subscribes an address to the alert topic (it must confirm). Default: none.
	AlertEmail string
	// TrailLogGroupName is an existing CloudTrail log group to subscribe to. Default: none
	// (EventBridge alone, which delivers read-only and write management events).
	TrailLogGroupName string
	// ReservedConcurrency reserves (and caps) the function's concurrency. Default 0: no
	// reservation, which deploys in any account. Lambda refuses a reservation that leaves less
	// than 10 of the account's concurrency quota unreserved, and a new account's quota is 10: set
	// this only where the quota has been raised (5 is plenty for the detector).
	ReservedConcurrency int
	// DedupeWindow suppresses repeated alerts with the same uniq_id. Default 1 hour.
	DedupeWindow time.Duration
	// InventoryTTL is how long an instance's addresses are cached. Default 10 minutes.
	InventoryTTL time.Duration
	// Regions restricts the regions in which the detector looks for an instance that is not in
	// its own region (its own region is always searched). Default: every region enabled for the
	// account (ec2:DescribeRegions). Set it when an SCP denies the other regions: a denied region
	// makes every lookup of an unknown instance fail and retry. A record whose instance is in none
	// of them is skipped and counted (SkippedOtherRegion), never an InstanceMissing alert.
	Regions []string
	// Lockdown makes the function lock its own credentials to the address AWS sees for it
	// (internal/lockdown). Default false.
	Lockdown bool
	// Trust is what the app trusts besides each instance's own network position: its trusted
	// egress prefixes and shared VPC endpoints. Give the detector the Trust of the app's locks
	// (lock.Trust) so that it accepts exactly what they admit: a call from a trusted egress
	// prefix, and a call through a shared endpoint from the instance's own private IPv4, are
	// OK; another host through a shared endpoint is still alerted. Literal values are validated
	// like the locks' (public prefixes, no /0, vpce- ids); tokens pass and are validated by the
	// function at cold start. Default: nothing.
	Trust lock.Trust
	// Organization makes the detector the central detector of an AWS Organization (see
	// "Organisation mode" in the package documentation). Default: nil, the detector judges its
	// own account's instance sessions and skips (and counts) the others'.
	Organization *Organization
	// Shadow runs a proposed lock mode or policy in report-only mode over the judged records
	// (see Shadow). Default: nil, off.
	Shadow *Shadow
	// Code overrides the function code (tests). Default: built from Package with go build.
	Code awslambda.Code
}

// Shadow is a proposal that the detector evaluates in report-only mode ("shadow mode"): for
// every judged instance session it works out whether the proposal would deny the call, and
// writes, per invocation, one log line with the calls it would deny per account, role and
// statement (with examples) and the metrics WouldDeny and ShadowUndetermined. Nothing is
// enforced and the alerts do not change. `review --shadow` merges the log lines into one report.
// Set exactly one field.
type Shadow struct {
	// Mode is a proposed lock mode: each record is evaluated against the lock that mode would
	// give its instance (its addresses from the inventory, and Trust).
	Mode lock.Mode
	// Policy is a proposed deny-only policy document in the lock's vocabulary, as JSON: the
	// organisation's SCP (lockpolicy.SCP) or any lock. It is compiled at synth (an unsupported
	// document is an error) and stored compressed (Lambda's environment holds 4 KB).
	Policy string
}

// env returns the shadow environment variable, validated.
func (s *Shadow) env() (key, value string, err error) {
	switch {
	case s.Mode != "" && s.Policy != "":
		return "", "", errors.New("detector: Props.Shadow: set Mode or Policy, not both")
	case s.Mode != "":
		if _, err := lockpolicy.ParseMode(string(s.Mode)); err != nil {
			return "", "", fmt.Errorf("detector: Props.Shadow.Mode: %w", err)
		}
		return contract.EnvShadowMode, string(s.Mode), nil
	case s.Policy != "":
		if _, err := shadow.CompileJSON([]byte(s.Policy)); err != nil {
			return "", "", fmt.Errorf("detector: Props.Shadow.Policy: %w", err)
		}
		v, err := shadowrun.EncodePolicy([]byte(s.Policy))
		if err != nil {
			return "", "", fmt.Errorf("detector: Props.Shadow.Policy: %w", err)
		}
		return contract.EnvShadowPolicy, v, nil
	default:
		return "", "", errors.New("detector: Props.Shadow: set Mode or Policy")
	}
}

// Organization is the central detector's organisation: where the member accounts' instance
// sessions arrive and how their inventories are read.
type Organization struct {
	// ID is the organisation's id (o- and 10 to 32 lower-case letters or digits). The function
	// may assume MemberRoleName only in accounts of this organisation (aws:ResourceOrgID).
	ID string
	// Bus is the central event bus the member accounts forward their instance sessions to
	// (their rules use InstanceSessionPattern). The detector gets a rule on it with the same
	// pattern and state as its local rule. When Bus is this account's default bus, the local
	// rule already reads it and no second rule is made.
	Bus awsevents.IEventBus
	// MemberRoleName is the read-only role, at path "/", that every member account has (deployed
	// by the member template), trusting this detector's role within the organisation; the
	// detector assumes it to read that account's EC2 inventory.
	MemberRoleName string
}

// Detector is the CloudTrail detector.
type Detector interface {
	constructs.Construct
	// Function is the detector Lambda.
	Function() awslambda.Function
	// Topic receives the alerts.
	Topic() awssns.Topic
	// DeadLetterQueue holds alerts and events that could not be processed.
	DeadLetterQueue() awssqs.Queue
}

type detector struct {
	constructs.Construct
	fn    awslambda.Function
	topic awssns.Topic
	dlq   awssqs.Queue
}

func (d *detector) Function() awslambda.Function  { return d.fn }
func (d *detector) Topic() awssns.Topic           { return d.topic }
func (d *detector) DeadLetterQueue() awssqs.Queue { return d.dlq }

var (
	orgIDRE    = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	roleNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	emailRE    = regexp.MustCompile(`^[^@\s",;<>]+@[^@\s",;<>]+\.[A-Za-z]{2,}$`)
	logGroupRE = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]{1,512}$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
)

// Validate checks props and returns an error that names the offending field.
func (p *Props) Validate() error {
	if p.Shadow != nil {
		if _, _, err := p.Shadow.env(); err != nil {
			return err
		}
	}
	switch {
	case p.AlertEmail != "" && !emailRE.MatchString(p.AlertEmail):
		return fmt.Errorf("detector: Props.AlertEmail %q is not an e-mail address", p.AlertEmail)
	case p.TrailLogGroupName != "" && !logGroupRE.MatchString(p.TrailLogGroupName):
		return fmt.Errorf("detector: Props.TrailLogGroupName %q is not a CloudWatch Logs group name", p.TrailLogGroupName)
	case p.ReservedConcurrency < 0 || p.ReservedConcurrency > 1000:
		return fmt.Errorf("detector: Props.ReservedConcurrency %d is out of range 0..1000 (0: no reservation)", p.ReservedConcurrency)
	case p.DedupeWindow < 0 || p.DedupeWindow > 24*time.Hour:
		return fmt.Errorf("detector: Props.DedupeWindow %v is out of range 0..24h", p.DedupeWindow)
	case p.InventoryTTL < 0 || p.InventoryTTL > time.Hour:
		return fmt.Errorf("detector: Props.InventoryTTL %v is out of range 0..1h", p.InventoryTTL)
	}
	if _, err := p.trust(); err != nil {
		return err
	}
	if o := p.Organization; o != nil {
		switch {
		case !orgIDRE.MatchString(o.ID):
			return fmt.Errorf("detector: Props.Organization.ID %q is not an organisation id (o- and 10 to 32 lower-case letters or digits)", o.ID)
		case o.Bus == nil:
			return fmt.Errorf("detector: Props.Organization.Bus is required: the central bus the member accounts forward to")
		case !roleNameRE.MatchString(o.MemberRoleName):
			return fmt.Errorf("detector: Props.Organization.MemberRoleName %q is not an IAM role name (1 to 64 of letters, digits and +=,.@_-)", o.MemberRoleName)
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Regions {
		switch {
		case !regionRE.MatchString(r):
			return fmt.Errorf("detector: Props.Regions[%d] %q is not a region name such as eu-west-1", i, r)
		case seen[r]:
			return fmt.Errorf("detector: Props.Regions[%d] %q is listed twice", i, r)
		}
		seen[r] = true
	}
	return nil
}

// trust validates Props.Trust (tokens pass) and returns it canonicalised.
func (p *Props) trust() (lockpolicy.Trust, error) {
	if len(p.Trust.EgressPrefixes) == 0 && len(p.Trust.SharedVPCEndpoints) == 0 {
		return lockpolicy.Trust{}, nil
	}
	t, err := lockpolicy.Trust(p.Trust).Validate(lock.IsToken)
	if err != nil {
		return lockpolicy.Trust{}, fmt.Errorf("detector: Props.Trust: %w", err)
	}
	return t, nil
}

// New creates a Detector. It returns an error, and creates nothing, when props are invalid or
// the function cannot be built.
func New(scope constructs.Construct, id string, props *Props) (Detector, error) {
	if props == nil {
		props = &Props{}
	}
	if err := props.Validate(); err != nil {
		return nil, err
	}
	code := props.Code
	if code == nil {
		var err error
		if code, err = golambda.Code(scope, Package); err != nil {
			// Name the construct: the build error alone says which package failed, not where.
			return nil, fmt.Errorf("detector %s/%s: building its Lambda: %w", *scope.Node().Path(), id, err)
		}
	}
	conc, dedupe, ttl := props.ReservedConcurrency, props.DedupeWindow, props.InventoryTTL
	if dedupe == 0 {
		dedupe = time.Hour
	}
	if ttl == 0 {
		ttl = 10 * time.Minute
	}

	d := &detector{}
	constructs.NewConstruct_Override(d, scope, jsii.String(id))
	stack := awscdk.Stack_Of(d)

	// A customer managed key: CloudWatch alarms can publish to a topic encrypted with it (they
	// cannot use the AWS managed aws/sns key). USD 1/month.
	key := awskms.NewKey(d, jsii.String("AlertKey"), &awskms.KeyProps{
		EnableKeyRotation: jsii.Bool(true),
		Description:       jsii.String("Encrypts Defenders detector alerts"),
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
		PendingWindow:     awscdk.Duration_Days(jsii.Number(7)),
	})
	// CloudWatch alarms publish to the topic as the service principal cloudwatch.amazonaws.com,
	// which needs the key (SNS encrypts with it on the alarm's behalf). Scoped to alarms of this
	// account and region with aws:SourceAccount and aws:SourceArn (the confused-deputy guard that
	// CloudWatch supports for SNS and KMS): another account's alarm cannot use the key.
	alarmsHere := alarmConditions(stack)
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		Conditions: alarmsHere,
	}), nil)
	d.topic = awssns.NewTopic(d, jsii.String("Alerts"), &awssns.TopicProps{
		DisplayName: jsii.String("Defenders: instance credentials used from the wrong place"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	// EnforceSSL leaves the topic policy with a single Deny: without this Allow, CloudWatch
	// (another principal than the account) could not publish and every alarm would go nowhere.
	// EventBridge publishes nothing here (its rule targets the function), so it gets no grant.
	d.topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AllowCloudWatchAlarmsToPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{d.topic.TopicArn()},
		Conditions: alarmsHere,
	}))
	if props.AlertEmail != "" {
		d.topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(props.AlertEmail), nil))
	}
	d.dlq = golambda.NewDeadLetterQueue(d, "DeadLetters")

	logs := golambda.NewLogGroup(d, "Logs")
	// The role is written out instead of using AWSLambdaBasicExecutionRole, so that every
	// permission is scoped and explained.
	role, lockEnv := golambda.NewRole(d, "Role", "Defenders detector: reads EC2 addresses, publishes alerts", props.Lockdown)
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("WriteOwnLogs"), // structured logs and embedded metrics (no PutMetricData needed)
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{logs.LogGroupArn()},
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		// The inventory: where each instance may call from. EC2 Describe* actions support no
		// resource-level permissions, so "*" is the only possible resource; they are read-only.
		// DescribeRegions: which regions to search for an instance that is not in this one (an
		// IAM call of an instance in eu-west-1 is delivered in us-east-1).
		Sid: jsii.String("ReadInstanceAddresses"),
		Actions: jsii.Strings("ec2:DescribeInstances", "ec2:DescribeNatGateways",
			"ec2:DescribeVpcEndpoints", "ec2:DescribeRegions"),
		Resources: jsii.Strings("*"),
	}))
	if o := props.Organization; o != nil {
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			// Organisation mode: read each member account's inventory through its member role.
			// The role name alone would let the function assume a role of that name in ANY account
			// (an outsider could create one trusting this role and feed it a made-up inventory
			// that vouches for the attacker's address); aws:ResourceOrgID limits it to the
			// organisation's accounts. The path is "/": a role of that name elsewhere in the path
			// tree does not match.
			Sid:       jsii.String("AssumeMemberInventoryRole"),
			Actions:   jsii.Strings("sts:AssumeRole"),
			Resources: &[]*string{awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), stack.Partition(), jsii.String(":iam::*:role/" + o.MemberRoleName)})},
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:ResourceOrgID": o.ID},
			},
		}))
	}
	d.topic.GrantPublish(role)    // sns:Publish on this topic only (and kms on its key)
	d.dlq.GrantSendMessages(role) // alerts that failed every publish attempt

	env := map[string]*string{
		EnvTopicARN:     d.topic.TopicArn(),
		EnvDLQURL:       d.dlq.QueueUrl(),
		EnvDedupeWindow: jsii.String(dedupe.String()),
		EnvInventoryTTL: jsii.String(ttl.String()),
		EnvSelfRoleARN:  role.RoleArn(),
	}
	if len(props.Regions) > 0 {
		env[EnvRegions] = jsii.String(strings.Join(props.Regions, ","))
	}
	trust, _ := props.trust() // validated above
	egress, shared := trust.Env()
	if egress != "" {
		env[EnvTrustedEgressPrefixes] = jsii.String(egress)
	}
	if shared != "" {
		env[EnvSharedVPCEndpoints] = jsii.String(shared)
	}
	if props.Shadow != nil {
		k, v, _ := props.Shadow.env() // validated above
		env[k] = jsii.String(v)
	}
	if o := props.Organization; o != nil {
		env[EnvOrganizationID] = jsii.String(o.ID)
		env[EnvMemberRoleName] = jsii.String(o.MemberRoleName)
	}
	for k, v := range lockEnv {
		env[k] = v
	}
	d.fn = golambda.NewFunction(d, "Function", &golambda.FunctionOptions{
		Code: code, Role: role, Timeout: awscdk.Duration_Seconds(jsii.Number(60)),
		ReservedConcurrency: conc, LogGroup: logs, DeadLetterQueue: d.dlq,
		MaxEventAge: awscdk.Duration_Hours(jsii.Number(6)),
		Description: "Defenders detector: alerts on instance credentials used from the wrong place",
		Env:         env,
	})

	d.rule(nil, "CloudTrailCalls", "Instance-role API calls (CloudTrail management events, read-only included) for the Defenders detector")
	if o := props.Organization; o != nil && !isDefaultBus(o.Bus) {
		d.rule(o.Bus, "OrganizationCalls", "Member accounts' instance-role API calls, forwarded to the central bus, for the Defenders detector")
	}
	if props.TrailLogGroupName != "" {
		lg := awslogs.LogGroup_FromLogGroupName(d, jsii.String("Trail"), jsii.String(props.TrailLogGroupName))
		awslogs.NewSubscriptionFilter(d, jsii.String("TrailSubscription"), &awslogs.SubscriptionFilterProps{
			LogGroup:      lg,
			Destination:   awslogsdestinations.NewLambdaDestination(d.fn, nil),
			FilterPattern: awslogs.FilterPattern_Literal(jsii.String(SubscriptionFilterPattern)),
		})
	}

	alarmAction := awscloudwatchactions.NewSnsAction(d.topic)
	errs := golambda.NewAlarm(d, "Errors", "The Defenders detector failed: events may be waiting in the dead-letter queue",
		d.fn.MetricErrors(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5))}))
	errs.AddAlarmAction(alarmAction)
	dead := golambda.NewAlarm(d, "DeadLetterAlarm", "Alerts or CloudTrail events are in the Defenders dead-letter queue: read and replay them",
		d.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5))}))
	dead.AddAlarmAction(alarmAction)
	return d, nil
}

// rule makes an EventBridge rule on bus (nil: the account's default bus) with
// InstanceSessionPattern, targeting the function.
func (d *detector) rule(bus awsevents.IEventBus, id, description string) {
	rule := awsevents.NewRule(d, jsii.String(id), &awsevents.RuleProps{
		Description:  jsii.String(description),
		EventBus:     bus,
		EventPattern: InstanceSessionPattern(),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(d.fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: d.dlq,
			RetryAttempts:   jsii.Number(8),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
		})},
	})
	// ENABLED delivers only write management events; this state adds the read-only ones
	// (Describe*, List*, Get*) that credential exfiltration starts with. EventBridge accepts it on
	// custom buses too. Set through the L1 property so that it works with every supported
	// aws-cdk-go version.
	rule.Node().DefaultChild().(awscdk.CfnResource).AddPropertyOverride(jsii.String("State"), jsii.String(RuleState))
}

// isDefaultBus reports whether bus is an account's default bus (its name is "default").
func isDefaultBus(bus awsevents.IEventBus) bool {
	name := bus.EventBusName()
	return name != nil && !*awscdk.Token_IsUnresolved(name) && *name == "default"
}
