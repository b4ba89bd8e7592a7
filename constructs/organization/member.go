package organization

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/constructs/locker"
)

// MemberProps configures the member-account template.
type MemberProps struct {
	// OrganizationID (o-...) is the organisation: the inventory role admits the detector role
	// only with aws:PrincipalOrgID equal to it. Required.
	OrganizationID string
	// HomeRegion is the Region whose stack instance creates the per-account resources, the
	// inventory role and the locker (see the package doc). Required; it must be one of the
	// StackSet's Regions, or no account gets them.
	HomeRegion string
	// CodeKey is the object key of the locker's code in every code bucket (CodeBucket.ObjectKey:
	// content-addressed, so a new build is a new key and a StackSet update replaces the code).
	// Required.
	CodeKey string
	// NamePrefix is prepended to the fixed names (inventory role, forwarding rule, code
	// buckets): empty, or lowercase ending in "-" (CheckNamePrefix). Default: none.
	NamePrefix string
	// Trust is what the app trusts besides each instance's own position; the member lockers
	// render it into every lock, as the app's own locker does. Default: nothing.
	Trust lock.Trust
	// Lockdown makes the member lockers lock their own credentials (internal/lockdown).
	Lockdown bool
	// Context is the CDK context the member stack is synthesized with. Give it the app's
	// (cdk.json's feature flags), so that the constructs in it render as they do in the app.
	// Keys that would write into the app's cloud assembly or change what is synthesized
	// (aws:cdk:* settings) are replaced. Default: none.
	Context map[string]any
	// BeforeSynth, if set, runs on the complete member stack before it is synthesized: to add
	// aspects (cdk-nag) and suppressions. Default: none.
	BeforeSynth func(m *Member) error
}

// Member is the member stack's parts, for MemberProps.BeforeSynth.
type Member struct {
	// Stack is the member stack (its own app; never part of the caller's).
	Stack awscdk.Stack
	// Locker is the locker (home Region only).
	Locker locker.Locker
	// InventoryRole is the read-only role the central detector assumes (home Region only).
	InventoryRole awsiam.Role
	// ForwardRule forwards instance-role CloudTrail calls to the central bus (every Region).
	ForwardRule awsevents.Rule
	// ForwardRole is the role EventBridge sends to the central bus with.
	ForwardRole awsiam.Role
}

// MemberTemplate is the synthesized member template.
type MemberTemplate struct {
	// Body is the template as compact JSON: what the StackSet's TemplateBody holds, byte for byte.
	Body string
	// Parameters are the template's parameter names, sorted (ParamEventBusArn, ...).
	Parameters []string
	// Warnings are the warning annotations of the member stack (cdk-nag's included), each
	// prefixed with its construct path; NewStackSet repeats them on the StackSet so that they
	// are not lost with the throw-away app.
	Warnings []string
}

// Validate checks props and returns an error that names the offending field.
func (p *MemberProps) Validate() error {
	if err := CheckOrganizationID(p.OrganizationID); err != nil {
		return fmt.Errorf("organization: MemberProps.OrganizationID: %w", err)
	}
	if err := CheckRegion(p.HomeRegion); err != nil {
		return fmt.Errorf("organization: MemberProps.HomeRegion: %w", err)
	}
	if err := CheckNamePrefix(p.NamePrefix); err != nil {
		return fmt.Errorf("organization: MemberProps.NamePrefix: %w", err)
	}
	if !strings.HasPrefix(p.CodeKey, CodeKeyPrefix) || strings.ContainsAny(p.CodeKey, "${}\" ") || len(p.CodeKey) > 1024 {
		return fmt.Errorf("organization: MemberProps.CodeKey %q: want a key under %s (CodeBucket.ObjectKey)", p.CodeKey, CodeKeyPrefix)
	}
	return nil
}

// SynthMemberTemplate builds the member stack in an app of its own (synthesized into a
// temporary directory that is removed before it returns), checks that nothing in it reported an
// error, and returns its template. Nothing of it reaches the caller's app or cloud assembly.
//
// The template holds, besides its parameters (ParamEventBusArn, ParamDetectorRoleArn,
// ParamCodeAccount) and the IsHomeRegion condition:
//
//   - in the home Region: the locker (constructs/locker, its code from the code bucket of the
//     stack's Region: Fn::Sub of the bucket name, and CodeKey) and the inventory role;
//   - in every Region: the forwarding rule and the role it sends with.
func SynthMemberTemplate(props *MemberProps) (*MemberTemplate, error) {
	if props == nil {
		return nil, errors.New("organization: MemberProps is required")
	}
	if err := props.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "defenders-member-")
	if err != nil {
		return nil, fmt.Errorf("organization: member template: %w", err)
	}
	defer os.RemoveAll(dir)

	ctx := map[string]any{}
	for k, v := range props.Context {
		if !strings.HasPrefix(k, "aws:cdk:") {
			ctx[k] = v
		}
	}
	// Construct paths and asset metadata cost bytes of the 51,200 and say nothing to a member
	// account. They go in as post-CLI context: under the CDK CLI, the context it passes in
	// CDK_CONTEXT_JSON (path metadata on) would override Context.
	final := map[string]any{"aws:cdk:enable-path-metadata": false, "aws:cdk:enable-asset-metadata": false}
	// Outdir is explicit: under the CDK CLI, CDK_OUTDIR would otherwise point this app at the
	// real cloud assembly and its manifest would replace the app's.
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir: jsii.String(dir), Context: &ctx, PostCliContext: &final,
		AnalyticsReporting: jsii.Bool(false), StackTraces: jsii.Bool(false),
	})
	m, err := buildMember(app, props)
	if err != nil {
		return nil, err
	}
	if props.BeforeSynth != nil {
		if err := props.BeforeSynth(m); err != nil {
			return nil, fmt.Errorf("organization: member template: %w", err)
		}
	}
	if err := synth(app); err != nil {
		return nil, fmt.Errorf("organization: member template: %w", err)
	}
	tpl, msgs, err := readArtifact(dir, *m.Stack.ArtifactId())
	if err != nil {
		return nil, fmt.Errorf("organization: member template: %w", err)
	}
	out := &MemberTemplate{}
	var errs []error
	for _, msg := range msgs {
		switch msg.level {
		case "error":
			errs = append(errs, errors.New(msg.text))
		case "warning":
			out.Warnings = append(out.Warnings, msg.text)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("organization: member template has errors: %w", err)
	}
	// Compact, keys sorted: the same template gives the same body byte for byte.
	body, err := json.Marshal(tpl)
	if err != nil {
		return nil, fmt.Errorf("organization: member template: %w", err)
	}
	out.Body = string(body)
	params, _ := tpl["Parameters"].(map[string]any)
	for name := range params {
		out.Parameters = append(out.Parameters, name)
	}
	sort.Strings(out.Parameters)
	sort.Strings(out.Warnings)
	return out, nil
}

// synth synthesizes app, returning a failure of the jsii kernel (a validation error panics in
// Go) as an error.
func synth(app awscdk.App) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("synth failed: %v", r)
		}
	}()
	app.Synth(nil)
	return nil
}

// message is an annotation of the synthesized member stack.
type message struct {
	level string // "error", "warning", "info"
	text  string // construct path: message
}

// readArtifact reads the template and the annotations of the stack artifact id from the cloud
// assembly in dir: the manifest's metadata, and the stack's additionalMetadataFile (cloud
// assembly schema 55 moves metadata there). Reading the files keeps this independent of the
// cx-api types, whose Go bindings are deprecated.
func readArtifact(dir, id string) (map[string]any, []message, error) {
	var manifest struct {
		Artifacts map[string]struct {
			Metadata   map[string][]metadataEntry `json:"metadata"`
			Additional string                     `json:"additionalMetadataFile"`
			Properties struct {
				TemplateFile string `json:"templateFile"`
			} `json:"properties"`
		} `json:"artifacts"`
	}
	if err := readJSON(filepath.Join(dir, "manifest.json"), &manifest); err != nil {
		return nil, nil, err
	}
	art, ok := manifest.Artifacts[id]
	if !ok || art.Properties.TemplateFile == "" {
		return nil, nil, fmt.Errorf("the cloud assembly has no stack %s", id)
	}
	meta := art.Metadata
	if art.Additional != "" {
		var more map[string][]metadataEntry
		if err := readJSON(filepath.Join(dir, filepath.FromSlash(art.Additional)), &more); err != nil {
			return nil, nil, err
		}
		if meta == nil {
			meta = map[string][]metadataEntry{}
		}
		for p, es := range more {
			meta[p] = append(meta[p], es...)
		}
	}
	var msgs []message
	for p, entries := range meta {
		for _, e := range entries {
			if level, ok := strings.CutPrefix(e.Type, "aws:cdk:"); ok && (level == "error" || level == "warning" || level == "info") {
				msgs = append(msgs, message{level: level, text: fmt.Sprintf("%s: %v", p, e.Data)})
			}
		}
	}
	var tpl map[string]any
	if err := readJSON(filepath.Join(dir, filepath.FromSlash(art.Properties.TemplateFile)), &tpl); err != nil {
		return nil, nil, err
	}
	return tpl, msgs, nil
}

// metadataEntry is one metadata entry of a construct path.
type metadataEntry struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// readJSON decodes the JSON file at name into v.
func readJSON(name string, v any) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return nil
}

// codeBucketPattern is the name of a Region's code bucket as a Fn::Sub body, with
// ParamCodeAccount and AWS::Region as its variables.
func codeBucketPattern(prefix string) string {
	return prefix + "defenders-code-${" + ParamCodeAccount + "}-${AWS::Region}"
}

// buildMember adds the member stack to app.
func buildMember(app awscdk.App, props *MemberProps) (*Member, error) {
	stack := awscdk.NewStack(app, jsii.String("defenders-member"), &awscdk.StackProps{
		Synthesizer: awscdk.NewBootstraplessSynthesizer(&awscdk.BootstraplessSynthesizerProps{}),
		Description: jsii.String("Defenders member account: the locker and the inventory role of the central detector (home Region), " +
			"and instance-role CloudTrail calls forwarded to the central event bus (every Region)"),
	})
	m := &Member{Stack: stack}
	busArn := awscdk.NewCfnParameter(stack, jsii.String(ParamEventBusArn), &awscdk.CfnParameterProps{
		Type:           jsii.String("String"),
		Description:    jsii.String("ARN of the central Defenders event bus (administrator account)"),
		AllowedPattern: jsii.String(`^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]+$`),
	}).ValueAsString()
	detectorRole := awscdk.NewCfnParameter(stack, jsii.String(ParamDetectorRoleArn), &awscdk.CfnParameterProps{
		Type:           jsii.String("String"),
		Description:    jsii.String("ARN of the central detector's role, the only principal the inventory role admits"),
		AllowedPattern: jsii.String(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`),
	}).ValueAsString()
	awscdk.NewCfnParameter(stack, jsii.String(ParamCodeAccount), &awscdk.CfnParameterProps{
		Type:           jsii.String("String"),
		Description:    jsii.String("Account that holds the Defenders code buckets (administrator account)"),
		AllowedPattern: jsii.String(`^[0-9]{12}$`),
	})
	home := awscdk.NewCfnCondition(stack, jsii.String("IsHomeRegion"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionEquals(awscdk.Aws_REGION(), jsii.String(props.HomeRegion)),
	})

	// The inventory role: what the central detector reads in this account to judge a call,
	// nothing else. Trust: the detector's role, and only as a principal of this organisation
	// (aws:PrincipalOrgID), so that a role of the same ARN in an account that has left the
	// organisation is refused.
	m.InventoryRole = awsiam.NewRole(stack, jsii.String("InventoryRole"), &awsiam.RoleProps{
		RoleName:    jsii.String(props.NamePrefix + InventoryRoleName),
		Description: jsii.String("Defenders inventory: read-only EC2 addresses for the central detector"),
		AssumedBy: awsiam.NewArnPrincipal(detectorRole).WithConditions(&map[string]any{
			"StringEquals": map[string]any{"aws:PrincipalOrgID": props.OrganizationID},
		}),
		MaxSessionDuration: awscdk.Duration_Hours(jsii.Number(1)),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"defenders-inventory": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{
				Statements: &[]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					// The detector's inventory, as in the detector's own role: an instance's
					// addresses (DescribeInstances), its VPC's NAT gateways and endpoints, and
					// the account's Regions (to find an instance of another Region). Read-only;
					// EC2 Describe* actions have no resource-level permissions, so "*" is the
					// only resource they take.
					Sid: jsii.String("ReadInstanceAddresses"),
					Actions: jsii.Strings("ec2:DescribeInstances", "ec2:DescribeNatGateways",
						"ec2:DescribeVpcEndpoints", "ec2:DescribeRegions"),
					Resources: jsii.Strings("*"),
				})},
			}),
		},
	})
	onlyIf(m.InventoryRole, home)

	// The locker, with its code from this Region's code bucket (Lambda takes code only from a
	// bucket of the function's Region). Lambda reads it with the credentials of whoever creates
	// the function: the StackSet's execution role of this account, a principal of the
	// organisation, which the bucket policy admits.
	code := awss3.Bucket_FromBucketName(stack, jsii.String("LockerCode"), awscdk.Fn_Sub(jsii.String(codeBucketPattern(props.NamePrefix)), nil))
	lk, err := locker.New(stack, "Locker", &locker.Props{
		Code:     awslambda.Code_FromBucket(code, jsii.String(props.CodeKey), nil),
		Trust:    props.Trust,
		Lockdown: props.Lockdown,
	})
	if err != nil {
		return nil, fmt.Errorf("organization: member template: %w", err)
	}
	m.Locker = lk
	onlyIf(lk, home)
	// Lambda updates a function only when its code's location changes; CodeKey is
	// content-addressed, so new code is a new key and the StackSet update replaces it.
	awscdk.Annotations_Of(code).AcknowledgeWarning(jsii.String("@aws-cdk/aws-lambda:codeFromBucketObjectVersionNotSpecified"),
		jsii.String("the key is content-addressed (CodeBucket.ObjectKey): new code is a new key, which updates the function"))

	// Forwarding: the detector's own pattern (instance-role sessions, not made by an AWS
	// service) to the central bus. EventBridge's documentation asks for an IAM role on a rule
	// whose target is an event bus of another account ("the sending event bus must have IAM
	// roles attached to them when sending events to another account"; "we recommend always
	// using IAM roles when the target of a rule is an event bus"): the role may put events on
	// that one bus, and only EventBridge may assume it, and only for this account's rule.
	ruleName := props.NamePrefix + ForwardRuleName
	ruleArn := awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":events:"), awscdk.Aws_REGION(), jsii.String(":"),
		awscdk.Aws_ACCOUNT_ID(), jsii.String(":rule/" + ruleName),
	})
	m.ForwardRole = awsiam.NewRole(stack, jsii.String("ForwardRole"), &awsiam.RoleProps{
		Description: jsii.String("Defenders: EventBridge forwards instance-role CloudTrail calls to the central bus"),
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil).WithConditions(&map[string]any{
			"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			"ArnEquals":    map[string]any{"aws:SourceArn": ruleArn},
		}),
	})
	bus := awsevents.EventBus_FromEventBusArn(stack, jsii.String("CentralBus"), busArn)
	m.ForwardRule = awsevents.NewRule(stack, jsii.String("ForwardInstanceSessions"), &awsevents.RuleProps{
		RuleName:     jsii.String(ruleName),
		Description:  jsii.String("Instance-role API calls (CloudTrail management events, read-only included) to the central Defenders detector"),
		EventPattern: detector.InstanceSessionPattern(),
		// events:PutEvents on the central bus, added to ForwardRole by the target.
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewEventBus(bus, &awseventstargets.EventBusProps{Role: m.ForwardRole})},
	})
	// As the detector's own rule: ENABLED would deliver only write management events; this
	// state adds the read-only ones (Describe*, List*, Get*) that exfiltration starts with.
	m.ForwardRule.Node().DefaultChild().(awscdk.CfnResource).AddPropertyOverride(jsii.String("State"), jsii.String(detector.RuleState))
	return m, nil
}

// onlyIf puts every CloudFormation resource under c under cond.
func onlyIf(c constructs.IConstruct, cond awscdk.CfnCondition) {
	for _, child := range *c.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if r, ok := child.(awscdk.CfnResource); ok {
			r.CfnOptions().SetCondition(cond)
		}
	}
}
