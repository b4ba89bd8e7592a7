package lockpolicy

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// The organisation of the SCP scenarios: the instance, networks and
// attackers of meaning_test.go and topology_test.go, plus an exempt account,
// an IAM user and the exemption tag.
const (
	orgRoot       = "r-ab12"
	exemptAccount = "444455556666"
	exemptTag     = "defenders:scp-exempt"

	userPrincipal = "arn:aws:iam::" + account + ":user/alice"
)

// caller is who makes a request: the principal and the keys AWS derives
// from it (the simulator does not derive them itself).
type caller struct {
	principal string
	keys      map[string]any
}

// sessionOf is a role session of role in acct, as AWS describes it in the
// request context.
func sessionOf(acct, role, session string) caller {
	return caller{
		principal: "arn:aws:sts::" + acct + ":assumed-role/" + role + "/" + session,
		keys:      map[string]any{"aws:PrincipalAccount": acct, "aws:PrincipalArn": "arn:aws:iam::" + acct + ":role/" + role},
	}
}

var (
	lukeSession   = sessionOf(account, "luke-role", instanceID)
	taggedSession = caller{principal: principal, keys: ctx(lukeSession.keys, map[string]any{"aws:PrincipalTag/" + exemptTag: "true"})}
	exemptSession = sessionOf(exemptAccount, "legacy-role", instanceID)
	alice         = caller{principal: userPrincipal, keys: map[string]any{"aws:PrincipalAccount": account, "aws:PrincipalArn": userPrincipal}}
	lambdaSession = sessionOf(account, "report-fn-role", "report-fn")
	ec2Infra      = sessionOf(account, "aws:ec2-infrastructure", instanceID)

	// exemptAccountCredentials are an instance's credentials in the exempt
	// account.
	exemptAccountCredentials = map[string]any{
		"aws:Ec2InstanceSourceVpc":         instanceVPC,
		"aws:Ec2InstanceSourcePrivateIPv4": instancePrivateIP,
		"ec2:SourceInstanceARN":            "arn:aws:ec2:" + region + ":" + exemptAccount + ":instance/" + instanceID,
	}
	// viaService marks a request an AWS service makes on the caller's behalf.
	viaService = map[string]any{"aws:ViaAWSService": "true", "aws:CalledVia": []string{"cloudformation.amazonaws.com"}}
)

// TestSCPMeaning evaluates the organisation's SCP with an independent IAM
// engine, the way AWS runs it: FullAWSAccess at the root, FullAWSAccess and
// the SCP at the account's level, and the role's own allow policy. Each row
// asserts the decision and the Sids that deny it: the SCP's and, on rows
// where the role also carries a lock, the lock's. The whole table runs in
// one Evaluate call.
func TestSCPMeaning(t *testing.T) {
	org := SCPOptions{
		Trust:          Trust{SharedVPCEndpoints: []string{sharedEndpoint}},
		ExemptAccounts: []string{exemptAccount},
		ExemptRoleTag:  exemptTag,
	}
	restricted := org
	restricted.RestrictInternet = true
	restricted.Trust.EgressPrefixes = []string{centralEgressPrefix}
	noTrust := SCPOptions{}
	bothEndpointDeniers := []string{SidSCPDenyEndpointCallsFromOtherHosts, SidSCPDenyEndpointCallsFromOtherVpcs}

	tests := []struct {
		name        string
		scp         SCPOptions
		locked      bool // the role also carries standardLock
		caller      caller
		context     map[string]any
		want        string
		scpDeniers  []string
		lockDeniers []string
	}{
		// The instance's own calls.
		{name: "the instance calling through an endpoint of its own VPC is allowed", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), want: iameval.Allowed},
		{name: "the instance calling through the organisation's shared endpoint is allowed", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)), want: iameval.Allowed},

		// Stolen credentials through VPC endpoints.
		{name: "stolen credentials used through an endpoint of another VPC are denied", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")),
			want:    iameval.ExplicitlyDenied, scpDeniers: bothEndpointDeniers},
		{name: "stolen credentials used in another VPC from a host with the instance's private IP are denied", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(spokeVPC, otherVPCE, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherVpcs}},
		{name: "stolen credentials used from another host of the instance's VPC are denied", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, neighbourPrivateIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherHosts}},
		{name: "stolen credentials used from another host through the shared endpoint are denied", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, neighbourPrivateIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherHosts}},
		{name: "stolen credentials used through an unlisted endpoint of the shared VPC are denied", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(sharedServicesVPC, otherSharedVPCEndpoint, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherVpcs}},
		{name: "without shared endpoints listed a call through the shared VPC's endpoint is denied", scp: noTrust, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherVpcs}},
		{name: "stolen credentials without aws:ViaAWSService are still denied", scp: org, caller: lukeSession,
			context: ctx(credentials, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")),
			want:    iameval.ExplicitlyDenied, scpDeniers: bothEndpointDeniers},
		{name: "an endpoint call from another VPC without aws:VpcSourceIp is denied by the VPC check alone", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, map[string]any{"aws:SourceVpc": otherVPC, "aws:SourceVpce": otherVPCE}),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyEndpointCallsFromOtherVpcs}},
		{name: "instance credentials lacking the instance's VPC and address (an IPv6-only instance) are denied on endpoints", scp: org, caller: lukeSession,
			context: ctx(map[string]any{"ec2:SourceInstanceARN": credentials["ec2:SourceInstanceARN"]}, direct,
				throughEndpoint(instanceVPC, endpointID, instancePrivateIP)),
			want: iameval.ExplicitlyDenied, scpDeniers: bothEndpointDeniers},

		// The internet.
		{name: "with RestrictInternet off stolen credentials used over the internet are allowed: the SCP alone does not stop internet use", scp: org, caller: lukeSession,
			context: ctx(credentials, direct, overInternet(attackerIP)), want: iameval.Allowed},
		{name: "with RestrictInternet off the lock on the role denies stolen credentials used over the internet", scp: org, locked: true, caller: lukeSession,
			context: ctx(credentials, direct, overInternet(attackerIP)),
			want:    iameval.ExplicitlyDenied, lockDeniers: []string{SidDenyPublicCallsFromOtherAddresses}},
		{name: "with RestrictInternet stolen credentials used from outside the egress prefixes are denied", scp: restricted, caller: lukeSession,
			context: ctx(credentials, direct, overInternet(attackerIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyPublicCallsFromOtherAddresses}},
		{name: "with RestrictInternet the instance calling through the central NAT is allowed", scp: restricted, caller: lukeSession,
			context: ctx(credentials, direct, overInternet(centralNATIP)), want: iameval.Allowed},
		{name: "with RestrictInternet the instance calling from its own unlisted public IP is denied", scp: restricted, caller: lukeSession,
			context: ctx(credentials, direct, overInternet(instancePublicIP)),
			want:    iameval.ExplicitlyDenied, scpDeniers: []string{SidSCPDenyPublicCallsFromOtherAddresses}},
		{name: "with RestrictInternet the instance's own endpoint calls are allowed", scp: restricted, caller: lukeSession,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), want: iameval.Allowed},

		// Principals that are not instance credentials.
		{name: "an IAM user's call from anywhere on the internet is allowed: the SCP applies only to instance credentials", scp: restricted, caller: alice,
			context: ctx(direct, overInternet(attackerIP)), want: iameval.Allowed},
		{name: "an IAM user's call through another VPC's endpoint from any host is allowed", scp: restricted, caller: alice,
			context: ctx(direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")), want: iameval.Allowed},
		{name: "a role session that is not an instance's is allowed from anywhere", scp: restricted, caller: lambdaSession,
			context: ctx(direct, overInternet(attackerIP)), want: iameval.Allowed},

		// Exemptions.
		{name: "stolen credentials of an instance in an exempt account are allowed through another VPC's endpoint", scp: org, caller: exemptSession,
			context: ctx(exemptAccountCredentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")), want: iameval.Allowed},
		{name: "stolen credentials of an instance in an exempt account are allowed from outside the egress prefixes", scp: restricted, caller: exemptSession,
			context: ctx(exemptAccountCredentials, direct, overInternet(attackerIP)), want: iameval.Allowed},
		{name: "stolen credentials of a role tagged exempt are allowed through another VPC's endpoint", scp: org, caller: taggedSession,
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")), want: iameval.Allowed},
		{name: "stolen credentials of a role tagged exempt are allowed from outside the egress prefixes", scp: restricted, caller: taggedSession,
			context: ctx(credentials, direct, overInternet(attackerIP)), want: iameval.Allowed},
		{name: "a role whose exemption tag is True rather than true is denied", scp: org,
			caller:  caller{principal: principal, keys: ctx(lukeSession.keys, map[string]any{"aws:PrincipalTag/" + exemptTag: "True"})},
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")),
			want:    iameval.ExplicitlyDenied, scpDeniers: bothEndpointDeniers},
		{name: "without ExemptRoleTag a tagged role is denied", scp: noTrust, caller: taggedSession,
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")),
			want:    iameval.ExplicitlyDenied, scpDeniers: bothEndpointDeniers},

		// AWS acting for the instance.
		{name: "an AWS service calling on the instance's behalf from its own network is allowed", scp: restricted, caller: lukeSession,
			context: ctx(credentials, viaService, overInternet(serviceIP)), want: iameval.Allowed},
		{name: "EC2's infrastructure role calling for the instance from AWS's network is allowed", scp: restricted, caller: ec2Infra,
			context: ctx(map[string]any{"ec2:SourceInstanceARN": credentials["ec2:SourceInstanceARN"]}, direct, overInternet(serviceIP)),
			want:    iameval.Allowed},

		// No network origin: the SCP denies only an origin that contradicts
		// the credentials; failing closed is the lock's job.
		{name: "instance credentials without a network origin are allowed by the SCP", scp: restricted, caller: lukeSession,
			context: ctx(credentials, direct), want: iameval.Allowed},
		{name: "instance credentials without a network origin are denied by the lock on a locked role", scp: restricted, locked: true, caller: lukeSession,
			context: ctx(credentials, direct),
			want:    iameval.ExplicitlyDenied, lockDeniers: []string{SidDenyCallsWithoutSourceAddress, SidDenyEndpointCallsFromOtherVpcs}},
	}

	fullAccess := iameval.Policy{Name: "FullAWSAccess", Document: json.RawMessage(iameval.FullAWSAccessSCP)}
	lock, err := Render(standardLock, Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	lockJSON := []byte(mustJSON(t, lock))
	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		scp, err := SCP(tt.scp)
		if err != nil {
			t.Fatalf("%s: SCP: %v", tt.name, err)
		}
		policies := []iameval.Policy{{Name: "AmazonEC2ReadOnlyAccess", Document: json.RawMessage(allowPolicy)}}
		if tt.locked {
			policies = append(policies, iameval.Policy{Name: "DefendersLock", Document: lockJSON})
		}
		acct := tt.caller.keys["aws:PrincipalAccount"].(string)
		reqs[i] = iameval.Request{
			Name: tt.name, Principal: tt.caller.principal, Action: "ec2:DescribeInstances", Resource: "*",
			Context: ctx(tt.caller.keys, tt.context), IdentityPolicies: policies,
			SCPs: []iameval.SCPLevel{
				{Target: orgRoot, Policies: []iameval.Policy{fullAccess}},
				{Target: acct, Policies: []iameval.Policy{fullAccess, {Name: "DefendersInstanceCredentials", Document: []byte(mustJSON(t, scp))}}},
			},
		}
	}
	results := evaluate(t, reqs)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := results[i]
			checkDecision(t, got, tt.want, tt.lockDeniers)
			if want := slices.Sorted(slices.Values(tt.scpDeniers)); !slices.Equal(got.DenyingSCPStatements, want) {
				t.Errorf("denied by SCP statements %q, want %q", got.DenyingSCPStatements, want)
			}
		})
	}
}
