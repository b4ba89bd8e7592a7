package lock_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// The evaluated world: concrete values for the tokens in the synthesized locks.
const (
	vpcID        = "vpc-0a1b2c3d4e5f60718"
	otherVpc     = "vpc-0fedcba9876543210"
	webIP        = "203.0.113.10"
	sharedAIP    = "203.0.113.21"
	sharedBIP    = "203.0.113.22"
	eipIP        = "203.0.113.30"
	oldEphemeral = "203.0.113.31" // the public IP the EIP instance had before association
	natIP        = "203.0.113.40"
	attacker     = "198.51.100.66"
	ownPrivate   = "10.0.0.12"
	otherPrivate = "10.0.1.99"
)

func public(ip string) map[string]any {
	return creds(map[string]any{"aws:SourceIp": ip})
}

func endpoint(vpc, from string) map[string]any {
	return creds(map[string]any{"aws:SourceVpc": vpc, "aws:SourceVpce": "vpce-0aaaabbbbccccdddd", "aws:VpcSourceIp": from})
}

func creds(m map[string]any) map[string]any {
	m["aws:Ec2InstanceSourceVpc"] = vpcID
	m["aws:Ec2InstanceSourcePrivateIPv4"] = ownPrivate
	m["ec2:SourceInstanceARN"] = "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0"
	return m
}

var viaService = creds(map[string]any{"aws:SourceIp": "52.94.133.131", "aws:ViaAWSService": "true"})

// TestEveryModeMeansWhatItSays evaluates the synthesized lock of each mode with the independent
// IAM evaluator (@cloud-copilot/iam-simulate).
func TestEveryModeMeansWhatItSays(t *testing.T) {
	tpl := modesApp(t).Templates["work"]
	natEIP := logicalID(t, tpl, "AWS::EC2::EIP", "VpcpublicSubnet1EIP")
	values := map[string]any{
		`{"Ref":"` + logicalID(t, tpl, "AWS::EC2::VPC", "Vpc") + `"}`:                              vpcID,
		`{"Fn::GetAtt":["` + natEIP + `","PublicIp"]}`:                                             natIP,
		`{"Fn::GetAtt":["` + logicalID(t, tpl, "AWS::EC2::EIP", "EipLockEip") + `","PublicIp"]}`:   eipIP,
		`{"Fn::GetAtt":["` + logicalID(t, tpl, "AWS::EC2::Instance", "Web") + `","PublicIp"]}`:     webIP,
		`{"Fn::GetAtt":["` + logicalID(t, tpl, "AWS::EC2::Instance", "SharedA") + `","PublicIp"]}`: sharedAIP,
		`{"Fn::GetAtt":["` + logicalID(t, tpl, "AWS::EC2::Instance", "SharedB") + `","PublicIp"]}`: sharedBIP,
	}
	for _, inst := range []string{"Web", "SharedA", "SharedB"} {
		values[`{"Fn::GetAtt":["`+logicalID(t, tpl, "AWS::EC2::Instance", inst)+`","VpcId"]}`] = vpcID
	}
	ec2ReadOnly := json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)
	type row struct {
		name string
		ctx  map[string]any
		want string
	}
	allowed, denied := iameval.Allowed, iameval.ExplicitlyDenied
	table := map[string][]row{
		"WebInstanceRole": {
			{"own public IP", public(webIP), allowed},
			{"stolen, attacker IP", public(attacker), denied},
			{"own VPC endpoint", endpoint(vpcID, ownPrivate), allowed},
			{"stolen, other VPC's endpoint", endpoint(otherVpc, "10.9.0.3"), denied},
			{"stolen, other host via own endpoint", endpoint(vpcID, otherPrivate), denied},
			{"AWS service on its behalf", viaService, allowed},
		},
		"SharedRole": {
			{"first instance's IP", public(sharedAIP), allowed},
			{"second instance's IP", public(sharedBIP), allowed},
			{"stolen, attacker IP", public(attacker), denied},
			{"stolen, another locked instance's IP", public(webIP), denied},
		},
		"EipInstanceRole": {
			{"the Elastic IP", public(eipIP), allowed},
			{"the ephemeral IP before association (fails closed)", public(oldEphemeral), denied},
			{"stolen, attacker IP", public(attacker), denied},
			{"own VPC endpoint", endpoint(vpcID, ownPrivate), allowed},
		},
		"WorkerInstanceRole": {
			{"through the NAT gateway", public(natIP), allowed},
			{"stolen, attacker IP", public(attacker), denied},
			{"own VPC endpoint", endpoint(vpcID, ownPrivate), allowed},
			{"stolen, other host via own endpoint", endpoint(vpcID, otherPrivate), denied},
			{"AWS service on its behalf", viaService, allowed},
		},
		"VaultInstanceRole": {
			{"any public IP, even the NAT's", public(natIP), denied},
			{"stolen, attacker IP", public(attacker), denied},
			{"own VPC endpoint", endpoint(vpcID, ownPrivate), allowed},
			{"stolen, other VPC's endpoint", endpoint(otherVpc, "10.9.0.3"), denied},
			{"stolen, other host via own endpoint", endpoint(vpcID, otherPrivate), denied},
			{"AWS service on its behalf", viaService, allowed},
		},
		"FleetInstanceRole": {
			{"through the NAT gateway", public(natIP), allowed},
			{"stolen, attacker IP", public(attacker), denied},
			{"own VPC endpoint", endpoint(vpcID, ownPrivate), allowed},
		},
	}
	var reqs []iameval.Request
	want := map[string]string{}
	for role, rows := range table {
		_, p := lockOf(t, tpl, role)
		doc, err := json.Marshal(cdktest.Substitute(t, cdktest.Props(p)["PolicyDocument"], values))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			name := fmt.Sprintf("%s: %s", role, r.name)
			want[name] = r.want
			reqs = append(reqs, iameval.Request{
				Name: name, Principal: "arn:aws:sts::111122223333:assumed-role/" + role + "/i-0123456789abcdef0",
				Action: "ec2:DescribeInstances", Resource: "*", Context: r.ctx,
				IdentityPolicies: []iameval.Policy{{Name: "ec2-read-only", Document: ec2ReadOnly}, {Name: "lock", Document: doc}},
			})
		}
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Run(r.Name, func(t *testing.T) {
			if r.Decision != want[r.Name] {
				t.Errorf("decision %s, want %s (denied by %v)", r.Decision, want[r.Name], r.DenyingStatements)
			}
		})
	}
}
