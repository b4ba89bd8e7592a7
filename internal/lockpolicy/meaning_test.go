package lockpolicy

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// The instances, networks and attackers of the scenarios. Addresses come
// from the documentation ranges (RFC 5737, RFC 3849).
const (
	account = "111122223333"
	region  = "us-east-1"

	instanceID        = "i-0abc1234def567890"
	instancePublicIP  = "203.0.113.10"
	instancePrivateIP = "10.0.1.23"
	instanceIPv6      = "2001:db8:1234::10"

	secondInstanceID        = "i-0def5678abc123456"
	secondInstancePublicIP  = "203.0.113.20"
	secondInstancePrivateIP = "10.0.2.45"

	natGatewayIP = "192.0.2.50"

	neighbourPublicIP  = "203.0.113.99" // another host in the instance's VPC
	neighbourPrivateIP = "10.0.1.99"

	attackerIP   = "198.51.100.77"
	attackerIPv6 = "2001:db8:dead::1"
	serviceIP    = "52.94.0.10" // an AWS service's own address

	instanceVPC = "vpc-0123456789abcdef0"
	otherVPC    = "vpc-0fedcba9876543210"
	endpointID  = "vpce-0aaaabbbbccccdddd"
	otherVPCE   = "vpce-0111122223333444"
)

const principal = "arn:aws:sts::" + account + ":assumed-role/luke-role/" + instanceID

// allowPolicy stands in for the role's grants (AmazonEC2ReadOnlyAccess).
const allowPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`

// ctx merges request-context fragments.
func ctx(parts ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, p := range parts {
		maps.Copy(out, p)
	}
	return out
}

// credentialsOf are the keys that travel with instance-role credentials:
// they always describe the instance the credentials were delivered to, even
// when a thief uses them elsewhere.
func credentialsOf(id, vpc, privateIP string) map[string]any {
	return map[string]any{
		"aws:Ec2InstanceSourceVpc":         vpc,
		"aws:Ec2InstanceSourcePrivateIPv4": privateIP,
		"ec2:SourceInstanceARN":            "arn:aws:ec2:" + region + ":" + account + ":instance/" + id,
	}
}

// direct marks a request made by the caller itself.
var direct = map[string]any{"aws:ViaAWSService": "false"}

// overInternet is the network part of a request to a public AWS endpoint.
func overInternet(sourceIP string) map[string]any {
	return map[string]any{"aws:SourceIp": sourceIP}
}

// throughEndpoint is the network part of a request through a VPC endpoint:
// no aws:SourceIp.
func throughEndpoint(vpc, vpce, vpcSourceIP string) map[string]any {
	return map[string]any{"aws:SourceVpc": vpc, "aws:SourceVpce": vpce, "aws:VpcSourceIp": vpcSourceIP}
}

var (
	credentials               = credentialsOf(instanceID, instanceVPC, instancePrivateIP)
	secondInstanceCredentials = credentialsOf(secondInstanceID, instanceVPC, secondInstancePrivateIP)

	standardLock      = Lock{SourceIPs: []string{instancePublicIP}, VPCs: []string{instanceVPC}}
	sharedRoleLock    = Lock{SourceIPs: []string{instancePublicIP, secondInstancePublicIP, natGatewayIP}, VPCs: []string{instanceVPC}}
	dualStackLock     = Lock{SourceIPs: []string{instancePublicIP, instanceIPv6}, VPCs: []string{instanceVPC}}
	endpointsOnlyLock = Lock{VPCs: []string{instanceVPC}}
	publicOnlyLock    = Lock{SourceIPs: []string{instancePublicIP}}
	twoVPCLock        = Lock{SourceIPs: []string{instancePublicIP}, VPCs: []string{instanceVPC, otherVPC}}
)

// TestLockMeaning evaluates the rendered lock with an independent IAM
// engine: each scenario is a realistic request context and the decision the
// lock must produce. The whole table runs in one Evaluate call.
func TestLockMeaning(t *testing.T) {
	tests := []struct {
		name    string
		lock    *Lock // nil: the role without a lock (control)
		action  string
		context map[string]any
		want    string
		deniers []string // Sids that must (and alone may) match
	}{
		// Control: the allow policy alone grants the attacker's call, so
		// every deny below is the lock's doing.
		{name: "without the lock stolen credentials work from anywhere",
			context: ctx(credentials, direct, overInternet(attackerIP)), want: iameval.Allowed},

		// a.
		{name: "stolen credentials used from another public IP are denied", lock: &standardLock,
			context: ctx(credentials, direct, overInternet(attackerIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromOtherAddresses}},
		{name: "stolen credentials used from another host of the instance's VPC over its own public IP are denied", lock: &standardLock,
			context: ctx(credentials, direct, overInternet(neighbourPublicIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromOtherAddresses}},
		{name: "stolen credentials without aws:ViaAWSService are still denied", lock: &standardLock,
			context: ctx(credentials, overInternet(attackerIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromOtherAddresses}},

		// b.
		{name: "the instance calling from its own public IP is allowed", lock: &standardLock,
			context: ctx(credentials, direct, overInternet(instancePublicIP)), want: iameval.Allowed},
		{name: "the lock grants nothing: an action the role lacks stays implicitly denied", lock: &standardLock,
			action:  "ec2:CreateVpc",
			context: ctx(credentials, direct, overInternet(instancePublicIP)), want: iameval.ImplicitlyDenied},

		// c.
		{name: "the instance calling through an endpoint of its own VPC is allowed", lock: &standardLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), want: iameval.Allowed},

		// d.
		{name: "stolen credentials used through an endpoint in another VPC are denied", lock: &standardLock,
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, "10.9.9.9")),
			want:    iameval.ExplicitlyDenied,
			deniers: []string{SidDenyEndpointCallsFromOtherHosts, SidDenyEndpointCallsFromOtherVpcs, SidDenyEndpointCallsFromOutsideTheInstanceVpc}},
		{name: "stolen credentials used in another listed VPC from a host with the same private IP are denied", lock: &twoVPCLock,
			context: ctx(credentials, direct, throughEndpoint(otherVPC, otherVPCE, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromOutsideTheInstanceVpc}},

		// e.
		{name: "stolen credentials used from another host of the same VPC through its endpoint are denied", lock: &standardLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, neighbourPrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromOtherHosts}},

		// f.
		{name: "an AWS service calling on the instance's behalf is allowed", lock: &standardLock,
			context: ctx(credentials, overInternet(serviceIP),
				map[string]any{"aws:ViaAWSService": "true", "aws:CalledVia": []string{"cloudformation.amazonaws.com"}}),
			want: iameval.Allowed},
		{name: "an AWS service calling on the instance's behalf without a network origin is allowed", lock: &standardLock,
			context: ctx(credentials, map[string]any{"aws:ViaAWSService": "true", "aws:CalledVia": []string{"cloudformation.amazonaws.com"}}),
			want:    iameval.Allowed},

		// g.
		{name: "a request with neither aws:SourceIp nor aws:SourceVpc is denied", lock: &standardLock,
			context: ctx(credentials, direct),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyCallsWithoutSourceAddress, SidDenyEndpointCallsFromOtherVpcs}},
		{name: "an endpoint call with credentials lacking the instance keys is denied", lock: &standardLock,
			context: ctx(direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromOtherHosts, SidDenyEndpointCallsFromOutsideTheInstanceVpc}},
		{name: "an endpoint call without aws:VpcSourceIp is denied", lock: &standardLock,
			context: ctx(credentials, direct, map[string]any{"aws:SourceVpc": instanceVPC, "aws:SourceVpce": endpointID}),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyCallsWithoutSourceAddress}},

		// h.
		{name: "each instance of a shared role calling from its own public IP is allowed", lock: &sharedRoleLock,
			context: ctx(secondInstanceCredentials, direct, overInternet(secondInstancePublicIP)), want: iameval.Allowed},
		{name: "an instance calling through the NAT gateway's Elastic IP is allowed", lock: &sharedRoleLock,
			context: ctx(credentials, direct, overInternet(natGatewayIP)), want: iameval.Allowed},
		{name: "stolen credentials of a shared role used from another public IP are denied", lock: &sharedRoleLock,
			context: ctx(secondInstanceCredentials, direct, overInternet(attackerIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromOtherAddresses}},
		{name: "one instance's stolen credentials used from another instance of the shared role through the endpoint are denied", lock: &sharedRoleLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, secondInstancePrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromOtherHosts}},
		{name: "the instance calling from its listed IPv6 address is allowed", lock: &dualStackLock,
			context: ctx(credentials, direct, overInternet(instanceIPv6)), want: iameval.Allowed},
		{name: "stolen credentials used from another IPv6 address are denied", lock: &dualStackLock,
			context: ctx(credentials, direct, overInternet(attackerIPv6)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromOtherAddresses}},

		// VPC endpoints only.
		{name: "in endpoints-only mode even the instance's own public IP is denied", lock: &endpointsOnlyLock,
			context: ctx(credentials, direct, overInternet(instancePublicIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyPublicCallsFromAnyAddress}},
		{name: "in endpoints-only mode the instance's own endpoint calls are allowed", lock: &endpointsOnlyLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), want: iameval.Allowed},
		{name: "in endpoints-only mode stolen credentials used from another host of the VPC are denied", lock: &endpointsOnlyLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, neighbourPrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromOtherHosts}},

		// Public addresses only.
		{name: "without listed VPCs the instance's own endpoint calls are denied", lock: &publicOnlyLock,
			context: ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromAnyVpc}},
		{name: "without listed VPCs a request with no network origin is denied", lock: &publicOnlyLock,
			context: ctx(credentials, direct),
			want:    iameval.ExplicitlyDenied, deniers: []string{SidDenyEndpointCallsFromAnyVpc}},
		{name: "without listed VPCs the instance's own public calls are allowed", lock: &publicOnlyLock,
			context: ctx(credentials, direct, overInternet(instancePublicIP)), want: iameval.Allowed},
	}

	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		policies := []iameval.Policy{{Name: "AmazonEC2ReadOnlyAccess", Document: json.RawMessage(allowPolicy)}}
		if tt.lock != nil {
			doc, err := Render(*tt.lock, Options{})
			if err != nil {
				t.Fatalf("%s: Render: %v", tt.name, err)
			}
			b, err := doc.JSON()
			if err != nil {
				t.Fatalf("%s: JSON: %v", tt.name, err)
			}
			policies = append(policies, iameval.Policy{Name: "DefendersLock", Document: b})
		}
		action := tt.action
		if action == "" {
			action = "ec2:DescribeInstances"
		}
		reqs[i] = iameval.Request{
			Name: tt.name, Principal: principal, Action: action, Resource: "*",
			Context: tt.context, IdentityPolicies: policies,
		}
	}
	results := evaluate(t, reqs)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecision(t, results[i], tt.want, tt.deniers)
		})
	}
}
