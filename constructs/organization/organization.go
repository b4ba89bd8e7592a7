// Package organization deploys Defenders to every account of chosen organizational units of an
// AWS Organization, from the management account or a delegated administrator, with the
// machinery AWS built for it: AWS Organizations, service-managed CloudFormation StackSets
// (new accounts of the OUs get the stack automatically), and EventBridge cross-account,
// cross-Region event buses. It never lists accounts itself and holds no credentials of theirs.
//
// The pieces, each usable on its own:
//
//   - SynthMemberTemplate: the template every member account gets, in every chosen Region. It
//     is synthesized from a real CDK stack (the locker construct included) in a throw-away app
//     of its own, so that it is never a stack of the caller's app (`cdk deploy --all` must not
//     deploy it into the administrator account), with a BootstraplessSynthesizer: member
//     accounts are never CDK-bootstrapped, and that synthesizer refuses assets, so nothing that
//     would need a bootstrap bucket can slip into the template.
//   - NewCodeBucket: where member accounts take the locker's code from. A Lambda function's
//     code must be in an S3 bucket of the function's own Region, and a StackSet cannot carry
//     CDK assets (cdklabs' cdk-stacksets does this; its Go bindings are not served by the Go
//     module proxy), so a small stack in the administrator account, in each Region where
//     member lockers run, holds a bucket that the organisation may read and a
//     BucketDeployment that copies the bundled locker into it under a content-addressed key.
//     The member template names that bucket with Fn::Sub (CodeAccount and AWS::Region) and
//     that key. Member lockers run in the home Region only (below), so the app needs one code
//     stack; the construct works in any Region.
//   - NewStackSet: the AWS::CloudFormation::StackSet that deploys the member template
//     (service-managed permissions, automatic deployment to new accounts, the template as
//     TemplateBody, refused above CloudFormation's 51,200 bytes).
//   - NewBus: the central event bus whose policy admits events:PutEvents only from principals
//     of the organisation. The detector (constructs/detector, Props.Organization) gets a rule
//     on it and assumes the inventory role (InventoryRoleName) of each member account.
//   - NewSCP: the optional organisation-wide guard rail, an AWS::Organizations::Policy rendered
//     by internal/lockpolicy.SCP.
//
// # One home Region per account
//
// IAM is global and EC2 is regional, and a StackSet deploys the same template in every Region
// of every account. Two things must exist once per account, so they are created only by the
// stack instance of the home Region (MemberProps.HomeRegion, a CloudFormation condition):
//
//   - the inventory role, whose name is fixed (the detector assumes it by name), and a second
//     Region's stack would fail on "already exists";
//   - the locker. Each locker reconciles every role under /defenders/ from the instances of its
//     own Region and writes a fail-closed lock for a role without any there: two lockers of one
//     account would overwrite each other's locks every 15 minutes. This is the single-account
//     app's rule too (one locker per account): a managed role must be used by instances of the
//     locker's Region only, or its lock lacks the others' addresses and fails closed for them.
//
// Every chosen Region gets the forwarding rule, so the detector sees instance credentials
// used in any of them.
package organization

import (
	"fmt"
	"regexp"
)

// Fixed names. Each is prefixed with the app's name prefix (MemberProps.NamePrefix) when one is
// set, so that two copies of the app can share an organisation.
const (
	// InventoryRoleName is the read-only role the central detector assumes in each member
	// account (detector.Organization.MemberRoleName). Its name is fixed because the detector
	// assumes it by name in accounts it learns from events; its path is "/", never the locker's
	// /defenders/ (the locker would lock it, as it locks every role there).
	InventoryRoleName = "defenders-inventory"
	// ForwardRuleName is the EventBridge rule, in every member account and Region, that forwards
	// instance-role CloudTrail calls to the central bus. Its name is fixed so that the trust of
	// the role it sends with can name it (aws:SourceArn) without a reference cycle.
	ForwardRuleName = "defenders-forward-instance-sessions"
	// CodeKeyPrefix is where the locker's code lives in each code bucket.
	CodeKeyPrefix = "locker/"
	// DefaultBusName is the central event bus's name.
	DefaultBusName = "defenders-organization"
	// DefaultStackSetName is the StackSet's name.
	DefaultStackSetName = "defenders-members"
)

// Parameters of the member template; NewStackSet passes each from the central stack.
const (
	// ParamEventBusArn is the central bus's ARN (forwarding target).
	ParamEventBusArn = "EventBusArn"
	// ParamDetectorRoleArn is the central detector's role ARN (the inventory role's principal).
	ParamDetectorRoleArn = "DetectorRoleArn"
	// ParamCodeAccount is the account that holds the code buckets (the administrator account).
	ParamCodeAccount = "CodeAccount"
)

// MaxTemplateBody is the largest TemplateBody CloudFormation accepts, in bytes (CloudFormation
// quotas, "Template body size in a request"); a larger template must go through TemplateURL.
const MaxTemplateBody = 51200

// MaxDeploymentTargets is how many OUs one StackSet operation accepts
// (CreateStackInstances: "The maximum number of organizational units (OUs) supported by a
// CreateStackInstances operation is 50"). Target a parent OU instead of more.
const MaxDeploymentTargets = 50

var (
	orgIDRE      = regexp.MustCompile(`^o-[a-z0-9]{10,32}$`)
	rootIDRE     = regexp.MustCompile(`^r-[0-9a-z]{4,32}$`)
	ouIDRE       = regexp.MustCompile(`^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$`)
	accountIDRE  = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE     = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)
	namePrefixRE = regexp.MustCompile(`^([a-z][a-z0-9-]{0,18}[a-z0-9]-)?$`)
)

// CheckOrganizationID returns an error unless id is an AWS Organizations id (o- and 10 to 32
// lowercase letters or digits, the pattern of the Organizations API).
func CheckOrganizationID(id string) error {
	if !orgIDRE.MatchString(id) {
		return fmt.Errorf("%q is not an organization id (o- and 10 to 32 lowercase letters or digits, as `aws organizations describe-organization` shows)", id)
	}
	return nil
}

// CheckDeploymentTarget returns an error unless id is an organization root (r-...) or an
// organizational unit (ou-...) id: what a service-managed StackSet deploys to.
func CheckDeploymentTarget(id string) error {
	if rootIDRE.MatchString(id) || ouIDRE.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%q is neither a root id (r-xxxx) nor an organizational unit id (ou-xxxx-xxxxxxxx)", id)
}

// CheckPolicyTarget returns an error unless id is a root, an organizational unit or an account
// id: what an Organizations policy can be attached to.
func CheckPolicyTarget(id string) error {
	if rootIDRE.MatchString(id) || ouIDRE.MatchString(id) || accountIDRE.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%q is neither a root id (r-xxxx), an organizational unit id (ou-xxxx-xxxxxxxx) nor a 12-digit account id", id)
}

// CheckRegion returns an error unless r is shaped like an AWS Region name (eu-west-1,
// us-gov-west-1). A well-formed name that AWS does not have fails when the StackSet deploys.
func CheckRegion(r string) error {
	if !regionRE.MatchString(r) {
		return fmt.Errorf("%q is not an AWS Region name such as eu-west-1", r)
	}
	return nil
}

// CheckNamePrefix returns an error unless p is empty or a lowercase name ending in "-" (it
// becomes part of S3 bucket names, which allow no uppercase).
func CheckNamePrefix(p string) error {
	if !namePrefixRE.MatchString(p) {
		return fmt.Errorf("name prefix %q: want empty or 1 to 20 lowercase letters, digits or dashes, starting with a letter, followed by \"-\"", p)
	}
	return nil
}

// checkUnique reports the first duplicate of list, naming field.
func checkUnique(field string, list []string) error {
	seen := map[string]bool{}
	for i, s := range list {
		if seen[s] {
			return fmt.Errorf("%s[%d] %q is listed twice", field, i, s)
		}
		seen[s] = true
	}
	return nil
}
