package lock_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
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

func TestDualStackInstancesAreLockedToTheirIPv6Too(t *testing.T) {
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("v6"), nil)
		vpc := awsec2.NewVpc(st, jsii.String("Vpc"), &awsec2.VpcProps{
			MaxAzs: jsii.Number(1), NatGateways: jsii.Number(0), IpProtocol: awsec2.IpProtocol_DUAL_STACK,
			SubnetConfiguration: &[]*awsec2.SubnetConfiguration{{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC}},
		})
		awsec2.NewInstance(st, jsii.String("Dual"), &awsec2.InstanceProps{
			Vpc: vpc, VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC},
			InstanceType: awsec2.NewInstanceType(jsii.String("t3.micro")), MachineImage: awsec2.MachineImage_LatestAmazonLinux2023(nil),
			RequireImdsv2: jsii.Bool(true), Ipv6AddressCount: jsii.Number(1),
		})
		if err := lock.Everything(app, nil); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	tpl := asm.Templates["v6"]
	inst := logicalID(t, tpl, "AWS::EC2::Instance", "Dual")
	subnet := logicalID(t, tpl, "AWS::EC2::Subnet", "VpcpublicSubnet1")
	_, p := lockOf(t, tpl, "DualInstanceRole")
	values := map[string]any{
		`{"Fn::GetAtt":["` + inst + `","PublicIp"]}`:                            webIP,
		`{"Fn::GetAtt":["` + inst + `","VpcId"]}`:                               vpcID,
		`{"Fn::Select":[0,{"Fn::GetAtt":["` + subnet + `","Ipv6CidrBlocks"]}]}`: "2001:db8:1234:5600::/64",
	}
	doc, err := json.Marshal(cdktest.Substitute(t, cdktest.Props(p)["PolicyDocument"], values))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][2]any{
		"its own IPv6 address":   {public("2001:db8:1234:5600::1a"), iameval.Allowed},
		"its own IPv4 address":   {public(webIP), iameval.Allowed},
		"an attacker's IPv6":     {public("2001:db8:ffff::66"), iameval.ExplicitlyDenied},
		"an attacker's IPv4":     {public(attacker), iameval.ExplicitlyDenied},
		"its own VPC's endpoint": {endpoint(vpcID, ownPrivate), iameval.Allowed},
	}
	var reqs []iameval.Request
	for name, r := range rows {
		reqs = append(reqs, iameval.Request{Name: name, Principal: "arn:aws:sts::111122223333:assumed-role/dual/i-0123456789abcdef0",
			Action: "ec2:DescribeInstances", Resource: "*", Context: r[0].(map[string]any),
			IdentityPolicies: []iameval.Policy{{Name: "ro", Document: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)}, {Name: "lock", Document: doc}}})
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if want := rows[r.Name][1]; r.Decision != want {
			t.Errorf("%s: %s, want %s; context %v; explain %s", r.Name, r.Decision, want, rows[r.Name][0], r.Explain)
		}
	}
}
