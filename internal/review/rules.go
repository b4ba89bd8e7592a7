package review

import (
	"fmt"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Rule is one check of the review (and of the guard, which runs the review over the
// synthesized templates). Every finding names its rule; an acknowledgement names a rule and a
// resource, with a reason.
type Rule struct {
	// ID is the rule's stable identity, "DEF-<AREA>-<n>".
	ID string `json:"id"`
	// Level is the level of its findings: SeverityError fails the review and `cdk synth`.
	Level Severity `json:"level"`
	// Title says what the rule finds, in a few words.
	Title string `json:"title"`
	// Why explains the risk.
	Why string `json:"why"`
	// Fix says how to fix a finding.
	Fix string `json:"fix"`
}

// Rule ids.
const (
	RuleOpenIngress        = "DEF-SG-1"
	RuleWideIngress        = "DEF-SG-2"
	RuleOpenableIngress    = "DEF-SG-3"
	RuleIMDSv1             = "DEF-IMDS-1"
	RuleIMDSv1Possible     = "DEF-IMDS-2"
	RuleUnlockedRole       = contract.RuleUnlockedRole
	RuleLockMissesInternet = "DEF-LOCK-2"
	RuleLockMissesEndpoint = "DEF-LOCK-3"
	RuleLockAdmitsAll      = "DEF-LOCK-4"
	RuleCrossedLock        = "DEF-LOCK-5"
	RuleUnjudgedRole       = "DEF-ROLE-1"
	RuleUnreviewedStack    = "DEF-TPL-1"
	RuleBadAcknowledgement = "DEF-ACK-1"
)

// Rules is the catalogue, in the order the README lists it.
var Rules = []Rule{
	{RuleOpenIngress, SeverityError, "SSH, RDP or every port open to the whole internet",
		"0.0.0.0/0 or ::/0 (or rules whose union covers them) can reach remote administration ports: the instance is probed within minutes.",
		"Restrict the source to the addresses that need it (a /32 or /128 per workstation), or use SSM Session Manager or EC2 Instance Connect Endpoint instead of an open port."},
	{RuleWideIngress, SeverityWarning, "SSH or RDP open to a wide range",
		"A source wider than /24 (IPv4) or /64 (IPv6) admits far more hosts than an administrator needs.",
		"Narrow the source to the hosts that need it (a single /32 or /128 per workstation or bastion)."},
	{RuleOpenableIngress, SeverityWarning, "SSH, RDP or every port can be opened to the internet by a parameter",
		"The deployed rule depends on a parameter (or condition) that can take a world-open value: one careless deployment opens the port.",
		"Constrain the parameter (AllowedPattern or AllowedValues without 0.0.0.0/0 and ::/0), or hard-code the narrow source."},
	{RuleIMDSv1, SeverityError, "Instance metadata service v1 allowed",
		"IMDSv1 answers any GET, so a server-side request forgery in the instance reads its role credentials.",
		"Set MetadataOptions.HttpTokens to \"required\" on the instance, launch template or launch configuration (CDK: requireImdsv2: true), or HttpEndpoint \"disabled\"."},
	{RuleIMDSv1Possible, SeverityWarning, "Instance metadata service v1 can be allowed by a parameter",
		"HttpTokens depends on a parameter or condition that can leave IMDSv1 on.",
		"Hard-code HttpTokens \"required\"."},
	{RuleUnlockedRole, SeverityError, "EC2 role without a lock",
		"Credentials stolen from its instances (IMDS, SSRF, a compromised process) work from anywhere.",
		"Attach a lock (lock.Everything, or Deny statements on aws:SourceIp and aws:SourceVpc), or acknowledge the rule for this role with a reason (lock.Exempt)."},
	{RuleLockMissesInternet, SeverityWarning, "Lock does not restrict calls over the internet",
		"Stolen credentials still work from any public address.",
		"Add a Deny statement with NotIpAddress aws:SourceIp (or Null aws:SourceIp \"false\" to deny every internet call)."},
	{RuleLockMissesEndpoint, SeverityWarning, "Lock does not restrict calls through VPC endpoints",
		"Stolen credentials work through an endpoint in any VPC, the attacker's included.",
		"Add a Deny statement with StringNotEquals aws:SourceVpc (or Null aws:SourceIp \"true\" to deny every endpoint call)."},
	{RuleLockAdmitsAll, SeverityError, "Lock admits the whole internet",
		"A lock that allows aws:SourceIp 0.0.0.0/0 or ::/0 stops nothing.",
		"List the public addresses the instances call from (their public IP, Elastic IP or NAT gateway addresses)."},
	{RuleCrossedLock, SeverityError, "Lock admits another instance's address",
		"The lock allows the address of an instance that does not use the role: stolen credentials work from that instance.",
		"Lock the role to the addresses of its own instances."},
	{RuleUnjudgedRole, SeverityWarning, "Instance role cannot be judged",
		"The instance's role or instance profile is imported, named literally or given by a parameter (on the default path or another): the review cannot see whether it is locked.",
		"Define the role in the same app, or review the template that defines it."},
	{RuleUnreviewedStack, SeverityWarning, "Nested stack not reviewed",
		"A nested stack's template could not be read (a TemplateURL outside the input): whatever it deploys was not judged.",
		"Review the nested template too (pass the directory or the cloud assembly that holds it)."},
	{RuleBadAcknowledgement, SeverityError, "Invalid acknowledgement",
		"An acknowledgement without a real reason, of an unknown rule or in the wrong shape would silence findings without saying why: it acknowledges nothing.",
		"Write resource Metadata `defenders:acknowledge` as a list of {\"rule\": \"DEF-...\", \"reason\": \"...\"} objects: a rule of this table, a reason of at least 10 characters."},
}

// RuleByID returns the rule with id.
func RuleByID(id string) (Rule, error) {
	for _, r := range Rules {
		if r.ID == id {
			return r, nil
		}
	}
	return Rule{}, fmt.Errorf("review: no rule %q", id)
}

// levelOf is the level of rule id; an unknown id is a programming error and reported as an
// error so that it cannot pass silently.
func levelOf(id string) Severity {
	if r, err := RuleByID(id); err == nil {
		return r.Level
	}
	return SeverityError
}
