package organization

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/annotate"
)

// MemberWarningID is the id of the warnings NewStackSet repeats from the member template
// (acknowledge it with Annotations.AcknowledgeWarning to silence them under --strict).
const MemberWarningID = "defenders:member-template"

// Values of StackSetProps.CallAs (CloudFormation's CallAs).
const (
	// CallAsSelf: the stack is deployed from the organisation's management account.
	CallAsSelf = "SELF"
	// CallAsDelegatedAdmin: the stack is deployed from a member account registered as a
	// delegated administrator for StackSets (member.org.stacksets.cloudformation.amazonaws.com).
	CallAsDelegatedAdmin = "DELEGATED_ADMIN"
)

// Operation preferences of every StackSet operation (creating, updating, deleting stack
// instances; AutoDeployment ignores them and deploys a new account at once):
const (
	// FailureTolerancePercentage: up to 10 % of the accounts of a Region may fail before the
	// operation stops in that Region (rounded down: with fewer than 10 accounts, none).
	FailureTolerancePercentage = 10
	// MaxConcurrentPercentage: a quarter of the accounts of a Region at a time, so that a broken
	// template is noticed before it reached every account.
	MaxConcurrentPercentage = 25
	// RegionConcurrency: all Regions at once. The template is the same everywhere and failure
	// tolerance is per Region; SEQUENTIAL would multiply the time by the number of Regions.
	RegionConcurrency = "PARALLEL"
	// ConcurrencyMode: SOFT_FAILURE_TOLERANCE runs at MaxConcurrentPercentage whatever the
	// failures; the default, STRICT_FAILURE_TOLERANCE, would start at FailureTolerance + 1
	// accounts (10 % + 1) and slow down with every failure.
	ConcurrencyMode = "SOFT_FAILURE_TOLERANCE"
)

// StackSetProps configures the StackSet.
type StackSetProps struct {
	// Template is the member template (SynthMemberTemplate). Required.
	Template *MemberTemplate
	// Parameters gives a value (a literal or a token of this stack) to every parameter of
	// Template. Required: a missing or unknown one is an error.
	Parameters map[string]*string
	// Targets are the roots (r-...) and organizational units (ou-...) whose accounts get the
	// stack, now and whenever an account joins them (automatic deployment). Required; at most
	// MaxDeploymentTargets.
	Targets []string
	// Regions are the Regions each account gets the stack in. Required.
	Regions []string
	// CallAs is CallAsSelf (default) or CallAsDelegatedAdmin.
	CallAs string
	// Name is the StackSet's name. Default DefaultStackSetName.
	Name string
}

var stackSetNameRE = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,127}$`)

// Validate checks props and returns an error that names the offending field.
func (p *StackSetProps) Validate() error {
	if p.Template == nil || p.Template.Body == "" {
		return errors.New("organization: StackSetProps.Template is required (SynthMemberTemplate)")
	}
	if n := len(p.Template.Body); n > MaxTemplateBody {
		return fmt.Errorf("organization: StackSetProps.Template: the member template has %d bytes; CloudFormation takes at most %d in TemplateBody "+
			"(upload it and use TemplateURL instead, or make the template smaller)", n, MaxTemplateBody)
	}
	switch {
	case len(p.Targets) == 0:
		return errors.New("organization: StackSetProps.Targets: name at least one root (r-...) or organizational unit (ou-...)")
	case len(p.Targets) > MaxDeploymentTargets:
		return fmt.Errorf("organization: StackSetProps.Targets: %d targets, a StackSet operation takes at most %d organizational units: target a parent OU instead", len(p.Targets), MaxDeploymentTargets)
	case len(p.Regions) == 0:
		return errors.New("organization: StackSetProps.Regions: name at least one Region")
	}
	for i, t := range p.Targets {
		if err := CheckDeploymentTarget(t); err != nil {
			return fmt.Errorf("organization: StackSetProps.Targets[%d]: %w", i, err)
		}
	}
	for i, r := range p.Regions {
		if err := CheckRegion(r); err != nil {
			return fmt.Errorf("organization: StackSetProps.Regions[%d]: %w", i, err)
		}
	}
	if err := checkUnique("organization: StackSetProps.Targets", p.Targets); err != nil {
		return err
	}
	if err := checkUnique("organization: StackSetProps.Regions", p.Regions); err != nil {
		return err
	}
	switch p.CallAs {
	case "", CallAsSelf, CallAsDelegatedAdmin:
	default:
		return fmt.Errorf("organization: StackSetProps.CallAs %q: want %s or %s", p.CallAs, CallAsSelf, CallAsDelegatedAdmin)
	}
	if p.Name != "" && !stackSetNameRE.MatchString(p.Name) {
		return fmt.Errorf("organization: StackSetProps.Name %q: want a letter, then up to 127 letters, digits or dashes", p.Name)
	}
	want := map[string]bool{}
	for _, name := range p.Template.Parameters {
		want[name] = true
		if p.Parameters[name] == nil {
			return fmt.Errorf("organization: StackSetProps.Parameters: the member template's parameter %s has no value", name)
		}
	}
	for name := range p.Parameters {
		if !want[name] {
			return fmt.Errorf("organization: StackSetProps.Parameters: the member template has no parameter %s", name)
		}
	}
	return nil
}

// NewStackSet creates the service-managed StackSet that deploys the member template to every
// account of props.Targets in every Region of props.Regions:
//
//   - PermissionModel SERVICE_MANAGED: CloudFormation creates the roles it needs in each
//     account through the organisation's trusted access (activate it once:
//     `aws cloudformation activate-organizations-access`); no administration or execution role
//     of ours;
//   - AutoDeployment enabled: an account that joins a target OU gets the stack, one that leaves
//     loses it (RetainStacksOnAccountRemoval false: no orphan lockers writing locks in an
//     account nobody watches);
//   - CAPABILITY_NAMED_IAM: the inventory role has a fixed name;
//   - ManagedExecution: CloudFormation queues operations that do not conflict instead of
//     refusing them while another one runs;
//   - the operation preferences above;
//   - the template as TemplateBody, compact JSON, refused above MaxTemplateBody;
//   - the member template's warnings (cdk-nag's included) repeated as warnings on the StackSet.
//
// The administrator account itself never gets a stack instance from a service-managed
// StackSet when it is the management account; a delegated administrator does when it is in a
// target OU (its own default bus then forwards to the central bus in its own account).
func NewStackSet(scope constructs.Construct, id string, props *StackSetProps) (awscdk.CfnStackSet, error) {
	if props == nil {
		return nil, errors.New("organization: StackSetProps is required")
	}
	if err := props.Validate(); err != nil {
		return nil, err
	}
	callAs, name := props.CallAs, props.Name
	if callAs == "" {
		callAs = CallAsSelf
	}
	if name == "" {
		name = DefaultStackSetName
	}
	var params []any
	for _, p := range props.Template.Parameters {
		params = append(params, &awscdk.CfnStackSet_ParameterProperty{ParameterKey: jsii.String(p), ParameterValue: props.Parameters[p]})
	}
	targets := append([]string(nil), props.Targets...)
	sort.Strings(targets)
	set := awscdk.NewCfnStackSet(scope, jsii.String(id), &awscdk.CfnStackSetProps{
		StackSetName:    jsii.String(name),
		Description:     jsii.String("Defenders member accounts: locker, inventory role for the central detector, forwarding of instance-role CloudTrail calls"),
		PermissionModel: jsii.String("SERVICE_MANAGED"),
		CallAs:          jsii.String(callAs),
		AutoDeployment: &awscdk.CfnStackSet_AutoDeploymentProperty{
			Enabled: jsii.Bool(true), RetainStacksOnAccountRemoval: jsii.Bool(false),
		},
		Capabilities:     jsii.Strings("CAPABILITY_NAMED_IAM"),
		ManagedExecution: map[string]any{"Active": true},
		OperationPreferences: &awscdk.CfnStackSet_OperationPreferencesProperty{
			FailureTolerancePercentage: jsii.Number(FailureTolerancePercentage),
			MaxConcurrentPercentage:    jsii.Number(MaxConcurrentPercentage),
			RegionConcurrencyType:      jsii.String(RegionConcurrency),
			ConcurrencyMode:            jsii.String(ConcurrencyMode),
		},
		Parameters: &params,
		StackInstancesGroup: &[]any{&awscdk.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: &awscdk.CfnStackSet_DeploymentTargetsProperty{OrganizationalUnitIds: jsii.Strings(targets...)},
			Regions:           jsii.Strings(props.Regions...),
		}},
		TemplateBody: jsii.String(props.Template.Body),
	})
	for _, w := range props.Template.Warnings {
		annotate.Warning(set, MemberWarningID, "member template: "+strings.TrimSpace(w))
	}
	return set, nil
}
