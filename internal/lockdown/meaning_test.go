package lockdown

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// TestSessionPolicyMeaning evaluates the session policy with the
// independent IAM engine.
//
// The simulator has no notion of session policies: it evaluates identity
// policies, where one Allow among them suffices. A session policy instead
// INTERSECTS with the role's policies. So the session policy is passed as
// a second identity policy next to the role's own grant, which evaluates
// its Deny statements exactly as IAM would (an explicit Deny in a session
// policy denies, like anywhere else) but not the intersection: its
// "Allow *" would look like a grant here. That half is checked
// structurally instead (TestSessionPolicy: the only Allow is * on *, so the
// intersection is the role's own permissions), and every request below
// uses an action the role itself allows.
func TestSessionPolicyMeaning(t *testing.T) {
	const (
		principal = "arn:aws:sts::" + account + ":assumed-role/fn-role/" + DefaultSessionName
		attacker  = "198.51.100.77"
		object    = "arn:aws:s3:::defenders-bucket/key"
	)
	rolePolicy := json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","sts:AssumeRole"],"Resource":"*"}]}`)
	withVPC, err := SessionPolicy(lambdaAddr, []string{vpcA})
	if err != nil {
		t.Fatal(err)
	}
	noVPC, err := SessionPolicy(lambdaAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	direct := map[string]any{"aws:ViaAWSService": "false"}
	internet := func(ip string) map[string]any { return map[string]any{"aws:SourceIp": ip} }
	endpoint := func(vpc string) map[string]any {
		return map[string]any{"aws:SourceVpc": vpc, "aws:SourceVpce": "vpce-0aaaabbbbccccdddd", "aws:VpcSourceIp": "10.0.1.23"}
	}
	ctx := func(parts ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, p := range parts {
			maps.Copy(out, p)
		}
		return out
	}
	tests := []struct {
		name    string
		session json.RawMessage
		action  string
		context map[string]any
		want    string
		deniers []string
	}{
		{name: "the function calling from its own address is allowed", session: noVPC,
			context: ctx(direct, internet(lambdaIP)), want: iameval.Allowed},
		{name: "leaked credentials used from another address are denied", session: noVPC,
			context: ctx(direct, internet(attacker)), want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenyPublicCallsFromOtherAddresses}},
		{name: "leaked credentials used without aws:ViaAWSService are still denied", session: noVPC,
			context: internet(attacker), want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenyPublicCallsFromOtherAddresses}},
		{name: "re-assuming the role to shed the policy is denied even from the function's address", session: noVPC,
			action: "sts:AssumeRole", context: ctx(direct, internet(lambdaIP)), want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenySheddingTheLock}},
		{name: "without VPCs any endpoint call is denied", session: noVPC,
			context: ctx(direct, endpoint(vpcA)), want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenyEndpointCallsFromAnyVpc}},
		{name: "a call with no source address at all is denied", session: withVPC,
			context: direct, want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenyEndpointCallsFromOtherVpcs}},
		{name: "a call through an endpoint of the function's VPC is allowed", session: withVPC,
			context: ctx(direct, endpoint(vpcA)), want: iameval.Allowed},
		{name: "leaked credentials used through an endpoint of another VPC are denied", session: withVPC,
			context: ctx(direct, endpoint(vpcB)), want: iameval.ExplicitlyDenied,
			deniers: []string{lockpolicy.SidDenyEndpointCallsFromOtherVpcs}},
		{name: "an AWS service calling on the function's behalf is allowed", session: noVPC,
			context: ctx(map[string]any{"aws:ViaAWSService": "true"}, internet("52.94.0.10")), want: iameval.Allowed},
	}
	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		action, resource := "s3:GetObject", object
		if tt.action != "" {
			action, resource = tt.action, roleARN
		}
		reqs[i] = iameval.Request{Name: tt.name, Principal: principal, Action: action, Resource: resource, Context: tt.context,
			IdentityPolicies: []iameval.Policy{{Name: "role", Document: rolePolicy}, {Name: "session", Document: tt.session}}}
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(c, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := results[i]
			if r.Decision != tt.want {
				t.Errorf("decision = %s, want %s (denied by %q)", r.Decision, tt.want, r.DenyingStatements)
			}
			if tt.deniers != nil && !slices.Equal(r.DenyingStatements, tt.deniers) {
				t.Errorf("denied by %q, want %q", r.DenyingStatements, tt.deniers)
			}
		})
	}
}
