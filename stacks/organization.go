package stacks

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsorganizations"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/locker"
	"github.com/defenders-cdk/defenders/constructs/organization"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Organisation-mode context keys (their one definition is in internal/contract).
const (
	KeyOrganizationID      = contract.KeyOrganizationID
	KeyOrganizationTargets = contract.KeyOrganizationTargets
	KeyOrganizationRegions = contract.KeyOrganizationRegions
	KeyOrganizationCallAs  = contract.KeyOrganizationCallAs
	KeySCP                 = contract.KeySCP
	KeySCPTargets          = contract.KeySCPTargets
	KeySCPRestrictInternet = contract.KeySCPRestrictInternet
	KeySCPExemptAccounts   = contract.KeySCPExemptAccounts
	KeySCPExemptRoleTag    = contract.KeySCPExemptRoleTag
	KeyShadowSCP           = contract.KeyShadowSCP
)

// organizationKeys are the keys that mean nothing without KeyOrganizationID.
var organizationKeys = []string{KeyOrganizationTargets, KeyOrganizationRegions, KeyOrganizationCallAs,
	KeySCP, KeySCPTargets, KeySCPRestrictInternet, KeySCPExemptAccounts, KeySCPExemptRoleTag, KeyShadowSCP}

// scpKeys are the keys that mean nothing without KeySCP or KeyShadowSCP.
var scpKeys = []string{KeySCPTargets, KeySCPRestrictInternet, KeySCPExemptAccounts, KeySCPExemptRoleTag}

// OrganizationConfig is organisation mode's configuration (the zero value: off).
type OrganizationConfig struct {
	// ID is the organisation (o-...). Empty: organisation mode is off.
	ID string
	// Targets are the roots (r-...) and OUs (ou-...) whose accounts get the member stack.
	Targets []string
	// Regions are the Regions every target account gets it in; the first is the home Region
	// (inventory role and locker: see constructs/organization).
	Regions []string
	// CallAs is SELF (deployed from the management account) or DELEGATED_ADMIN.
	CallAs string
	// SCP adds the organisation-wide guard rail (an SCP) attached to SCPTargets.
	SCP        bool
	SCPTargets []string
	// SCPRestrictInternet, SCPExemptAccounts, SCPExemptRoleTag: lockpolicy.SCPOptions.
	SCPRestrictInternet bool
	SCPExemptAccounts   []string
	SCPExemptRoleTag    string
	// ShadowSCP runs the SCP that the SCP keys describe in shadow mode in the central detector
	// (report-only: what it would deny, per account and role), whether or not SCP deploys it.
	ShadowSCP bool
}

// Enabled reports whether organisation mode is on.
func (o OrganizationConfig) Enabled() bool { return o.ID != "" }

// HomeRegion is the Region of the per-account resources: the first of Regions.
func (o OrganizationConfig) HomeRegion() string {
	if len(o.Regions) == 0 {
		return ""
	}
	return o.Regions[0]
}

// loadOrganization reads the organisation-mode keys. c holds the keys read before (the
// detector switch, the trust). Every error names its key.
func loadOrganization(get Getter, c Config) (OrganizationConfig, error) {
	var o OrganizationConfig
	id, err := optionalString(get, KeyOrganizationID)
	if err != nil {
		return o, err
	}
	if id == "" {
		for _, k := range organizationKeys {
			if get(k) != nil {
				return o, fmt.Errorf("context %s is set but %s is not: it belongs to organisation mode", k, KeyOrganizationID)
			}
		}
		return o, nil
	}
	if err := organization.CheckOrganizationID(id); err != nil {
		return o, fmt.Errorf("context %s: %w", KeyOrganizationID, err)
	}
	o.ID = id
	if !c.Detector {
		return o, fmt.Errorf("context %s is false: organisation mode (%s) needs the central detector, which the member accounts forward to", KeyDetector, KeyOrganizationID)
	}
	if o.Targets, err = idList(get, KeyOrganizationTargets, organization.CheckDeploymentTarget); err != nil {
		return o, err
	}
	switch n := len(o.Targets); {
	case n == 0:
		return o, fmt.Errorf("context %s: name the roots (r-...) or organizational units (ou-...) whose accounts get Defenders, comma-separated", KeyOrganizationTargets)
	case n > organization.MaxDeploymentTargets:
		return o, fmt.Errorf("context %s: %d targets, a StackSet operation takes at most %d: target a parent OU instead", KeyOrganizationTargets, n, organization.MaxDeploymentTargets)
	}
	if o.Regions, err = idList(get, KeyOrganizationRegions, organization.CheckRegion); err != nil {
		return o, err
	}
	if len(o.Regions) == 0 {
		return o, fmt.Errorf("context %s: name the Regions every account gets Defenders in, comma-separated; the first is the home Region (locker, inventory role)", KeyOrganizationRegions)
	}
	callAs, err := optionalString(get, KeyOrganizationCallAs)
	if err != nil {
		return o, err
	}
	switch o.CallAs = strings.ToUpper(callAs); o.CallAs {
	case "":
		o.CallAs = organization.CallAsSelf
	case organization.CallAsSelf, organization.CallAsDelegatedAdmin:
	default:
		return o, fmt.Errorf("context %s: %q: want %s (deploying from the management account) or %s (from a delegated administrator)",
			KeyOrganizationCallAs, callAs, organization.CallAsSelf, organization.CallAsDelegatedAdmin)
	}
	if o.SCP, err = BoolValue(get, KeySCP, false); err != nil {
		return o, err
	}
	if o.ShadowSCP, err = BoolValue(get, KeyShadowSCP, false); err != nil {
		return o, err
	}
	if !o.SCP && !o.ShadowSCP {
		for _, k := range scpKeys {
			if get(k) != nil {
				return o, fmt.Errorf("context %s is set but neither %s nor %s is true: it configures the SCP", k, KeySCP, KeyShadowSCP)
			}
		}
		return o, nil
	}
	if o.SCPTargets, err = idList(get, KeySCPTargets, organization.CheckPolicyTarget); err != nil {
		return o, err
	}
	if o.SCP && len(o.SCPTargets) == 0 {
		return o, fmt.Errorf("context %s: name the roots, organizational units or accounts to attach the SCP to, comma-separated (attach it where it must apply, not everywhere)", KeySCPTargets)
	}
	if o.SCPRestrictInternet, err = BoolValue(get, KeySCPRestrictInternet, false); err != nil {
		return o, err
	}
	if o.SCPExemptAccounts, err = listValue(get, KeySCPExemptAccounts); err != nil {
		return o, err
	}
	if o.SCPExemptRoleTag, err = optionalString(get, KeySCPExemptRoleTag); err != nil {
		return o, err
	}
	// Render it now: a policy that cannot be rendered or is too large is a configuration error,
	// and the error names the key to change.
	if _, err := organization.RenderSCP(o.scpProps(c)); err != nil {
		return o, fmt.Errorf("context %s: %w", scpErrorKeys(err), err)
	}
	return o, nil
}

// scpErrorKeys names the context keys behind an SCP rendering error.
func scpErrorKeys(err error) string {
	var keys []string
	if errors.Is(err, lockpolicy.ErrInvalidAccountID) {
		keys = append(keys, KeySCPExemptAccounts)
	}
	if errors.Is(err, lockpolicy.ErrInvalidTagKey) {
		keys = append(keys, KeySCPExemptRoleTag)
	}
	if errors.Is(err, lockpolicy.ErrNoEgressPrefixes) {
		keys = append(keys, KeySCPRestrictInternet, KeyTrustedEgress)
	}
	if errors.Is(err, lockpolicy.ErrSCPTooLarge) {
		keys = append(keys, KeySCPExemptAccounts, KeyTrustedEgress, KeySharedEndpoints)
	}
	if len(keys) == 0 {
		keys = []string{KeySCP}
	}
	return strings.Join(keys, ", ")
}

// scpProps is the SCP of this configuration.
func (o OrganizationConfig) scpProps(c Config) *organization.SCPProps {
	return &organization.SCPProps{
		Targets: o.SCPTargets, Trust: c.LockTrust(), RestrictInternet: o.SCPRestrictInternet,
		ExemptAccounts: o.SCPExemptAccounts, ExemptRoleTag: o.SCPExemptRoleTag,
	}
}

// idList reads a list-valued key and checks every item with check; duplicates are errors.
func idList(get Getter, key string, check func(string) error) ([]string, error) {
	list, err := listValue(get, key)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, item := range list {
		if err := check(item); err != nil {
			return nil, fmt.Errorf("context %s: %w", key, err)
		}
		if seen[item] {
			return nil, fmt.Errorf("context %s: %q is listed twice", key, item)
		}
		seen[item] = true
	}
	return list, nil
}

// OrganizationStacks are the stacks of organisation mode, all in the administrator account
// (the management account or a delegated administrator).
type OrganizationStacks struct {
	// Code is the code stack of the home Region: the bucket the member lockers load their code
	// from (only the home Region runs a locker).
	Code *OrganizationCodeStack
	// Central holds the bus, the detector and the StackSet.
	Central *OrganizationStack
	// SCP holds the guard rail (nil unless defenders:scp is true).
	SCP *OrganizationSCPStack
}

// OrganizationCodeStack is a Region's code bucket.
type OrganizationCodeStack struct {
	awscdk.Stack
	Code organization.CodeBucket
}

// OrganizationStack is the central stack.
type OrganizationStack struct {
	awscdk.Stack
	// Bus receives the member accounts' instance-role calls.
	Bus awsevents.EventBus
	// Detector judges them (organisation mode).
	Detector detector.Detector
	// StackSet deploys the member template.
	StackSet awscdk.CfnStackSet
	// Member is the member template the StackSet holds.
	Member *organization.MemberTemplate
}

// OrganizationSCPStack holds the SCP. It is a stack of its own because Organizations takes the
// policy only from the management account (or a delegated administrator that its delegation
// policy allows to manage policies): deploy it with those credentials. It uses no CDK
// bootstrap (BootstraplessSynthesizer: no assets, a template small enough to pass inline), so
// the management account need not be bootstrapped.
type OrganizationSCPStack struct {
	awscdk.Stack
	Policy awsorganizations.CfnPolicy
}

// namePrefix is the prefix of the fixed names in member accounts: the app's prefix,
// lowercased (it becomes part of S3 bucket names), and a dash.
func (c Config) namePrefix() string {
	if c.Prefix == "" {
		return ""
	}
	return strings.ToLower(c.Prefix) + "-"
}

// NewOrganization adds the stacks of organisation mode to app:
//
//   - "organization-code-<home Region>" (environment: that Region): the code bucket of the
//     member lockers;
//   - "organization" (the app's environment): the central event bus, the detector in
//     organisation mode (it replaces the single-account "detector" stack), the StackSet with
//     the member template; deployed after the code stack;
//   - "organization-scp" (the app's environment, no bootstrap), with defenders:scp only.
func NewOrganization(app awscdk.App, cfg Config) (*OrganizationStacks, error) {
	o := cfg.Organization
	if !o.Enabled() {
		return nil, errors.New("organization stacks: organisation mode is off")
	}
	out := &OrganizationStacks{}
	prefix := cfg.namePrefix()
	central := awscdk.NewStack(app, jsii.String(cfg.StackName("organization")), &awscdk.StackProps{
		Env:         stackEnv(cfg),
		Description: jsii.String("Defenders organisation: central event bus, detector and the StackSet of the member accounts"),
	})
	home := o.HomeRegion()
	var account *string
	if cfg.Account != "" {
		account = jsii.String(cfg.Account)
	}
	codeStack := awscdk.NewStack(app, jsii.String(cfg.StackName("organization-code-"+home)), &awscdk.StackProps{
		Env:         &awscdk.Environment{Account: account, Region: jsii.String(home)},
		Description: jsii.String("Defenders organisation: the member lockers' code in " + home + ", readable by the organisation"),
	})
	// Build the locker when either stack is synthesized for deployment: a central stack
	// deployed alone (cdk deploy -e) must not name the key of a build that was skipped.
	code, err := organization.LockerCode(central, codeStack)
	if err != nil {
		return nil, fmt.Errorf("organization stacks: %w", err)
	}
	cb, err := organization.NewCodeBucket(codeStack, "LockerCode", &organization.CodeBucketProps{
		OrganizationID: o.ID, Code: code, NamePrefix: prefix,
	})
	if err != nil {
		return nil, fmt.Errorf("organization stacks (context %s): %w", KeyOrganizationRegions, err)
	}
	suppressCodeStack(codeStack, cb)
	out.Code = &OrganizationCodeStack{Stack: codeStack, Code: cb}

	all, _ := app.Node().GetAllContext(nil).(map[string]any)
	member, err := organization.SynthMemberTemplate(&organization.MemberProps{
		OrganizationID: o.ID, HomeRegion: home, CodeKey: cb.ObjectKey(), NamePrefix: prefix,
		Trust: cfg.LockTrust(), Lockdown: cfg.Lockdown, Context: all,
		BeforeSynth: func(m *organization.Member) error {
			// The same review as every stack of the app: cdk-nag, with reasons for what is
			// suppressed. Errors fail the synth (SynthMemberTemplate checks).
			awscdk.Aspects_Of(m.Stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
			suppressLocker(m.Locker)
			suppress(m.InventoryRole,
				nag("AwsSolutions-IAM5", "ec2:DescribeInstances, DescribeNatGateways, DescribeVpcEndpoints and DescribeRegions support no resource-level permissions; they are read-only and are the central detector's address inventory."))
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("organization stacks: %w", err)
	}

	bus, err := organization.NewBus(central, "Bus", &organization.BusProps{OrganizationID: o.ID, Name: prefix + organization.DefaultBusName})
	if err != nil {
		return nil, fmt.Errorf("organization stacks: %w", err)
	}
	shadow, err := cfg.DetectorShadow()
	if err != nil {
		return nil, err
	}
	dprops := &detector.Props{
		Shadow:              shadow,
		AlertEmail:          cfg.AlertEmail,
		TrailLogGroupName:   cfg.TrailLogGroup,
		Lockdown:            cfg.Lockdown,
		ReservedConcurrency: cfg.DetectorReservedConcurrency,
		Regions:             cfg.DetectorRegions,
		Trust:               cfg.LockTrust(),
	}
	// Organisation mode: a rule on the bus, sts:AssumeRole on the inventory role of the
	// organisation's accounts (constructs/detector).
	setDetectorOrganization(dprops, detectorOrganization{ID: o.ID, Bus: bus, MemberRoleName: prefix + organization.InventoryRoleName})
	det, err := detector.New(central, "Detector", dprops)
	if err != nil {
		return nil, fmt.Errorf("organization stacks, detector (context %s, %s, %s): %w", KeyAlertEmail, KeyTrailLogGroup, KeyDetectorRegions, err)
	}
	suppressDetector(det)

	set, err := organization.NewStackSet(central, "Members", &organization.StackSetProps{
		Template: member,
		Parameters: map[string]*string{
			organization.ParamEventBusArn:     bus.EventBusArn(),
			organization.ParamDetectorRoleArn: det.Function().Role().RoleArn(),
			organization.ParamCodeAccount:     central.Account(),
		},
		Targets: o.Targets, Regions: o.Regions, CallAs: o.CallAs, Name: prefix + organization.DefaultStackSetName,
	})
	if err != nil {
		return nil, fmt.Errorf("organization stacks (context %s, %s, %s): %w", KeyOrganizationTargets, KeyOrganizationRegions, KeyOrganizationCallAs, err)
	}
	// The code must be in the bucket before a stack instance creates a function from it.
	central.AddDependency(codeStack, jsii.String("member lockers load their code from the code bucket"))
	out.Central = &OrganizationStack{Stack: central, Bus: bus, Detector: det, StackSet: set, Member: member}

	if o.SCP {
		st := awscdk.NewStack(app, jsii.String(cfg.StackName("organization-scp")), &awscdk.StackProps{
			Env:         stackEnv(cfg),
			Synthesizer: awscdk.NewBootstraplessSynthesizer(&awscdk.BootstraplessSynthesizerProps{}),
			Description: jsii.String("Defenders organisation: the SCP that takes away what no EC2 instance credential should do (management account)"),
		})
		pol, err := organization.NewSCP(st, "SCP", o.scpProps(cfg))
		if err != nil {
			return nil, fmt.Errorf("organization stacks (context %s): %w", KeySCPTargets, err)
		}
		out.SCP = &OrganizationSCPStack{Stack: st, Policy: pol}
	}
	return out, nil
}

// detectorOrganization is what constructs/detector's organisation mode takes:
// detector.Props.Organization, a *detector.Organization with exactly these three fields.
type detectorOrganization struct {
	// ID is the organisation (o-...).
	ID string
	// Bus is the central bus; the detector gets a rule on it.
	Bus awsevents.IEventBus
	// MemberRoleName is the inventory role the detector assumes in each member account.
	MemberRoleName string
}

// setDetectorOrganization puts o into props: the one place that names
// detector.Props.Organization (written in parallel with this file; should its shape change,
// only this function changes).
func setDetectorOrganization(props *detector.Props, o detectorOrganization) {
	props.Organization = &detector.Organization{ID: o.ID, Bus: o.Bus, MemberRoleName: o.MemberRoleName}
}

// suppressLocker gives a locker's cdk-nag suppressions, as the locker stack does.
func suppressLocker(l locker.Locker) {
	suppress(l.Function().Role(),
		nag("AwsSolutions-IAM5", "ec2:DescribeInstances, DescribeRouteTables, DescribeNatGateways, DescribeAddresses and iam:ListRoles support no resource-level permissions (read-only); instance-profile/* is read-only (profiles may have any path); role/defenders/* is the managed path, the only place the locker writes."))
	suppress(l.DeadLetterQueue(),
		nag("AwsSolutions-SQS3", "This queue is itself the dead-letter queue of the locker."))
}

// suppressDetector gives a detector its cdk-nag suppressions (the detector stack and organisation mode).
func suppressDetector(d detector.Detector) {
	suppress(d.Function().Role(),
		nag("AwsSolutions-IAM5", "ec2:DescribeInstances, DescribeNatGateways, DescribeVpcEndpoints and DescribeRegions support no resource-level permissions; they are read-only and needed for the address inventory. In organisation mode, sts:AssumeRole on arn:aws:iam::*:role/<member role> is scoped by aws:ResourceOrgID to the organisation's accounts: the account is the record's, unknown until an event arrives."))
	suppress(d.DeadLetterQueue(),
		nag("AwsSolutions-SQS3", "This queue is itself the dead-letter queue of the detector."))
}

// suppressCodeStack gives the code stack's cdk-nag suppressions.
func suppressCodeStack(stack awscdk.Stack, cb organization.CodeBucket) {
	suppress(cb.Bucket(),
		nag("AwsSolutions-S1", "The bucket only distributes the locker's public code to the organisation; it is written by the deployment alone and read by CloudFormation in member accounts (CloudTrail data events can record reads); access logs would need a second bucket per Region."))
	// BucketDeployment's handler is a singleton function of the stack (CDK's code).
	for _, c := range *stack.Node().Children() {
		if strings.HasPrefix(*c.Node().Id(), "Custom::CDKBucketDeployment") {
			suppress(c,
				nag("AwsSolutions-IAM4", "CDK's BucketDeployment handler uses AWSLambdaBasicExecutionRole for its own logs."),
				nag("AwsSolutions-IAM5", "CDK's BucketDeployment handler reads the CDK asset bucket's objects and writes the code bucket's keys (s3:GetObject*/List*/PutObject* on bucket/*): it copies objects whose keys are content hashes."),
				nag("AwsSolutions-L1", "CDK's BucketDeployment handler runtime is chosen by aws-cdk-lib, not by this app."))
		}
	}
}
