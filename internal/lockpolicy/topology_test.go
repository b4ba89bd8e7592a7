package lockpolicy

import (
	"encoding/json"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// The enterprise topologies of the README's "Centralised egress and shared
// endpoints" table. Addresses are documentation ranges (RFC 5737).
const (
	// centralEgressPrefix holds the Elastic IPs of the NAT gateways of a
	// central egress VPC that spokes reach over Transit Gateway.
	centralEgressPrefix = "192.0.2.128/28"
	centralNATIP        = "192.0.2.130"
	// corporateProxyIP is an on-premises proxy that AWS sees as the source.
	corporateProxyIP = "198.51.100.200"

	// sharedServicesVPC holds interface endpoints that every spoke uses
	// (through Transit Gateway and a Route 53 private hosted zone).
	sharedServicesVPC = "vpc-0aaaa1111bbbb2222"
	sharedEndpoint    = "vpce-0bbbb2222cccc3333"
	// otherSharedVPCEndpoint is an endpoint in the shared-services VPC that
	// the app does not list.
	otherSharedVPCEndpoint = "vpce-0cccc3333dddd4444"

	// spokeVPC is another spoke of the same Transit Gateway.
	spokeVPC = "vpc-0dddd4444eeee5555"
)

// TestTopologies evaluates, per network topology, what the lock allows,
// what it denies and what it cannot tell apart (rows marked "cannot tell
// apart" are allowed on purpose: they document the topology's limit, and a
// change that closed one would make the row fail and the README stale).
func TestTopologies(t *testing.T) {
	natEgress := Lock{SourceIPs: []string{natGatewayIP}, VPCs: []string{instanceVPC}}
	centralEgress := Lock{VPCs: []string{instanceVPC}, Trust: Trust{EgressPrefixes: []string{centralEgressPrefix}}}
	proxy := Lock{VPCs: []string{instanceVPC}, Trust: Trust{EgressPrefixes: []string{corporateProxyIP}}}
	sharedEndpoints := Lock{VPCs: []string{instanceVPC}, Trust: Trust{SharedVPCEndpoints: []string{sharedEndpoint}}}
	sharedOnly := Lock{Trust: Trust{SharedVPCEndpoints: []string{sharedEndpoint}}}
	both := Lock{VPCs: []string{instanceVPC}, Trust: Trust{EgressPrefixes: []string{centralEgressPrefix}, SharedVPCEndpoints: []string{sharedEndpoint}}}
	spokeHost := credentialsOf(secondInstanceID, spokeVPC, instancePrivateIP) // same private IP, another spoke

	tests := []struct {
		topology string
		name     string
		lock     Lock
		context  map[string]any
		want     string
		deniers  []string
	}{
		{"nat-egress", "the instance calling through its NAT gateway is allowed", natEgress,
			ctx(credentials, direct, overInternet(natGatewayIP)), iameval.Allowed, nil},
		{"nat-egress", "stolen credentials used from outside are denied", natEgress,
			ctx(credentials, direct, overInternet(attackerIP)), iameval.ExplicitlyDenied, []string{SidDenyPublicCallsFromOtherAddresses}},
		{"nat-egress", "cannot tell apart: another host behind the same NAT gateway", natEgress,
			ctx(credentials, direct, overInternet(natGatewayIP)), iameval.Allowed, nil},

		{"central-egress", "the instance calling through the central NAT over Transit Gateway is allowed", centralEgress,
			ctx(credentials, direct, overInternet(centralNATIP)), iameval.Allowed, nil},
		{"central-egress", "the instance calling through its own VPC's endpoint is allowed", centralEgress,
			ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), iameval.Allowed, nil},
		{"central-egress", "stolen credentials used from outside the prefix are denied", centralEgress,
			ctx(credentials, direct, overInternet(attackerIP)), iameval.ExplicitlyDenied, []string{SidDenyPublicCallsFromOtherAddresses}},
		{"central-egress", "stolen credentials used through a spoke's endpoint are denied", centralEgress,
			ctx(credentials, direct, throughEndpoint(spokeVPC, otherVPCE, instancePrivateIP)), iameval.ExplicitlyDenied,
			[]string{SidDenyEndpointCallsFromOtherVpcs, SidDenyEndpointCallsFromOutsideTheInstanceVpc}},
		{"central-egress", "cannot tell apart: any host of any spoke leaving through the central NAT", centralEgress,
			ctx(spokeHost, direct, overInternet(centralNATIP)), iameval.Allowed, nil},

		{"corporate-proxy", "the instance calling through the corporate proxy is allowed", proxy,
			ctx(credentials, direct, overInternet(corporateProxyIP)), iameval.Allowed, nil},
		{"corporate-proxy", "stolen credentials used from next to the proxy are denied", proxy,
			ctx(credentials, direct, overInternet("198.51.100.201")), iameval.ExplicitlyDenied, []string{SidDenyPublicCallsFromOtherAddresses}},

		{"shared-endpoints", "the instance calling through the shared endpoint is allowed", sharedEndpoints,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)), iameval.Allowed, nil},
		{"shared-endpoints", "the instance calling through its own VPC's endpoint is allowed", sharedEndpoints,
			ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), iameval.Allowed, nil},
		{"shared-endpoints", "stolen credentials used from another host through the shared endpoint are denied", sharedEndpoints,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, neighbourPrivateIP)), iameval.ExplicitlyDenied,
			[]string{SidDenyEndpointCallsFromOtherHosts}},
		{"shared-endpoints", "stolen credentials used through an unlisted endpoint of the shared VPC are denied", sharedEndpoints,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, otherSharedVPCEndpoint, instancePrivateIP)), iameval.ExplicitlyDenied,
			[]string{SidDenyEndpointCallsFromOtherVpcs, SidDenyEndpointCallsFromOutsideTheInstanceVpc}},
		{"shared-endpoints", "a call from the shared VPC without an endpoint id is denied", sharedEndpoints,
			ctx(credentials, direct, map[string]any{"aws:SourceVpc": sharedServicesVPC, "aws:VpcSourceIp": instancePrivateIP}), iameval.ExplicitlyDenied,
			[]string{SidDenyEndpointCallsFromOtherVpcs, SidDenyEndpointCallsFromOutsideTheInstanceVpc}},
		{"shared-endpoints", "stolen credentials used over the internet are denied", sharedEndpoints,
			ctx(credentials, direct, overInternet(attackerIP)), iameval.ExplicitlyDenied, []string{SidDenyPublicCallsFromAnyAddress}},
		{"shared-endpoints", "cannot tell apart: a host of another spoke with the instance's private IP through the shared endpoint", sharedEndpoints,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)), iameval.Allowed, nil},
		{"shared-endpoints", "with only shared endpoints the instance's own VPC endpoint is denied", sharedOnly,
			ctx(credentials, direct, throughEndpoint(instanceVPC, endpointID, instancePrivateIP)), iameval.ExplicitlyDenied,
			[]string{SidDenyEndpointCallsFromOtherVpcs}},
		{"shared-endpoints", "with only shared endpoints the shared endpoint is allowed", sharedOnly,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)), iameval.Allowed, nil},

		{"central-egress+shared-endpoints", "the shared endpoint is allowed", both,
			ctx(credentials, direct, throughEndpoint(sharedServicesVPC, sharedEndpoint, instancePrivateIP)), iameval.Allowed, nil},
		{"central-egress+shared-endpoints", "the central NAT is allowed", both,
			ctx(credentials, direct, overInternet(centralNATIP)), iameval.Allowed, nil},
		{"central-egress+shared-endpoints", "a request with no network origin is denied", both,
			ctx(credentials, direct), iameval.ExplicitlyDenied, []string{SidDenyCallsWithoutSourceAddress, SidDenyEndpointCallsFromOtherVpcs}},
		{"central-egress+shared-endpoints", "an AWS service on the instance's behalf is allowed", both,
			ctx(credentials, map[string]any{"aws:ViaAWSService": "true", "aws:CalledVia": []string{"cloudformation.amazonaws.com"}}), iameval.Allowed, nil},
	}
	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		doc, err := Render(tt.lock, Options{})
		if err != nil {
			t.Fatalf("%s: Render: %v", tt.name, err)
		}
		b, err := doc.JSON()
		if err != nil {
			t.Fatalf("%s: JSON: %v", tt.name, err)
		}
		reqs[i] = iameval.Request{
			Name: tt.topology + ": " + tt.name, Principal: principal, Action: "ec2:DescribeInstances", Resource: "*",
			Context: tt.context,
			IdentityPolicies: []iameval.Policy{
				{Name: "AmazonEC2ReadOnlyAccess", Document: json.RawMessage(allowPolicy)},
				{Name: "DefendersLock", Document: b},
			},
		}
	}
	results := evaluate(t, reqs)
	for i, tt := range tests {
		t.Run(tt.topology+"/"+tt.name, func(t *testing.T) {
			checkDecision(t, results[i], tt.want, tt.deniers)
		})
	}
}
