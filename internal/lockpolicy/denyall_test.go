package lockpolicy

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// TestDenyAllGolden pins the deny-all document to the one the locker built
// by hand before it moved here.
func TestDenyAllGolden(t *testing.T) {
	const want = `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"DenyPublicCallsFromAnyAddress","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"false"}}},` +
		`{"Sid":"DenyEndpointCallsFromAnyVpc","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"}}}]}`
	if got := mustJSON(t, DenyAll()); got != want {
		t.Errorf("DenyAll =\n%s\nwant\n%s", got, want)
	}
}

// TestDenyAllIsMadeOfRendersAnyStatements checks that the deny-all
// document is made of exactly the statements Render emits for "no source
// IP" and "no VPC", so it means what the lock documentation says.
func TestDenyAllIsMadeOfRendersAnyStatements(t *testing.T) {
	noIPs, err := Render(Lock{VPCs: []string{instanceVPC}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	noVPCs, err := Render(Lock{SourceIPs: []string{instancePublicIP}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Statement{noIPs.Statement[0], noVPCs.Statement[len(noVPCs.Statement)-1]}
	got := DenyAll().Statement
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deny-all statements = %+v\nwant %+v", got, want)
	}
	if want[0].Sid != SidDenyPublicCallsFromAnyAddress || want[1].Sid != SidDenyEndpointCallsFromAnyVpc {
		t.Errorf("unexpected Sids %q, %q", want[0].Sid, want[1].Sid)
	}
}

// TestDenyAllMeaning evaluates the deny-all lock with the independent IAM
// engine: nothing but calls by AWS services survives.
func TestDenyAllMeaning(t *testing.T) {
	doc, err := DenyAll().JSON()
	if err != nil {
		t.Fatal(err)
	}
	creds := credentialsOf(instanceID, instanceVPC, instancePrivateIP)
	tests := []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{name: "a call from the instance's own public IP is denied",
			ctx: ctx(creds, map[string]any{"aws:SourceIp": instancePublicIP, "aws:ViaAWSService": "false"}), want: iameval.ExplicitlyDenied},
		{name: "a call through an endpoint of the instance's own VPC is denied",
			ctx: ctx(creds, map[string]any{"aws:SourceVpc": instanceVPC, "aws:VpcSourceIp": instancePrivateIP, "aws:ViaAWSService": "false"}), want: iameval.ExplicitlyDenied},
		{name: "a call without any source address is denied",
			ctx: ctx(creds), want: iameval.ExplicitlyDenied},
		{name: "a call an AWS service makes on the role's behalf is allowed",
			ctx: ctx(creds, map[string]any{"aws:SourceIp": serviceIP, "aws:ViaAWSService": "true"}), want: iameval.Allowed},
	}
	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		reqs[i] = iameval.Request{Name: tt.name, Principal: principal, Action: "ec2:DescribeInstances", Resource: "*",
			Context: tt.ctx, IdentityPolicies: []iameval.Policy{{Name: "allow", Document: json.RawMessage(allowPolicy)}, {Name: "lock", Document: doc}}}
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(c, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if results[i].Decision != tt.want {
				t.Errorf("decision = %s, want %s (denied by %q)", results[i].Decision, tt.want, results[i].DenyingStatements)
			}
		})
	}
}
