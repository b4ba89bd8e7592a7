package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// Addresses of the evaluated world. The instance's public IP and its VPC stand in for the
// CloudFormation tokens (Fn::GetAtt PublicIp, Fn::ImportValue of the VPC id) of the synthesized
// lock; everything else is an attacker's position.
const (
	instancePublicIP  = "203.0.113.50"
	instancePrivateIP = "10.0.0.12"
	instanceVpc       = "vpc-0a1b2c3d4e5f60718"
	otherVpc          = "vpc-0fedcba9876543210"
	attackerIP        = "198.51.100.66"
	neighbourPublicIP = "203.0.113.77"
	neighbourPrivate  = "10.0.1.99"
)

// scenario is one use of an instance's credentials.
type scenario struct {
	name   string
	action string
	ctx    map[string]any
	// want is the decision for Matt (no lock) and Luke (locked).
	matt, luke string
}

// instanceCreds are the context keys that travel with EC2 instance-role credentials wherever
// they are used: they describe the instance the credentials were delivered to.
func instanceCreds(extra map[string]any) map[string]any {
	m := map[string]any{
		"aws:Ec2InstanceSourceVpc":         instanceVpc,
		"aws:Ec2InstanceSourcePrivateIPv4": instancePrivateIP,
		"ec2:SourceInstanceARN":            "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var scenarios = []scenario{
	{"the instance calls from its own public IP", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceIp": instancePublicIP}), iameval.Allowed, iameval.Allowed},
	{"stolen credentials are used from an attacker's public IP", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceIp": attackerIP}), iameval.Allowed, iameval.ExplicitlyDenied},
	{"the instance calls through a VPC endpoint of its own VPC", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceVpc": instanceVpc, "aws:SourceVpce": "vpce-0aaaabbbbccccdddd", "aws:VpcSourceIp": instancePrivateIP}),
		iameval.Allowed, iameval.Allowed},
	{"stolen credentials are used through a VPC endpoint in another VPC", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceVpc": otherVpc, "aws:SourceVpce": "vpce-0eeeeffff00001111", "aws:VpcSourceIp": "10.9.0.3"}),
		iameval.Allowed, iameval.ExplicitlyDenied},
	{"stolen credentials are used from another host in the same VPC through its endpoint", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceVpc": instanceVpc, "aws:SourceVpce": "vpce-0aaaabbbbccccdddd", "aws:VpcSourceIp": neighbourPrivate}),
		iameval.Allowed, iameval.ExplicitlyDenied},
	{"stolen credentials are used from another host in the same VPC over the internet", "ec2:DescribeInstances",
		instanceCreds(map[string]any{"aws:SourceIp": neighbourPublicIP}), iameval.Allowed, iameval.ExplicitlyDenied},
	{"an AWS service calls on the instance's behalf", "ec2:DescribeVolumes",
		instanceCreds(map[string]any{"aws:SourceIp": "52.94.133.131", "aws:ViaAWSService": "true", "aws:CalledVia": []string{"cloudformation.amazonaws.com"}}),
		iameval.Allowed, iameval.Allowed},
	{"the lock grants nothing: an action outside the role's policies stays denied", "iam:CreateUser",
		instanceCreds(map[string]any{"aws:SourceIp": instancePublicIP}), iameval.ImplicitlyDenied, iameval.ImplicitlyDenied},
}

// TestLockMeaningWithAnIndependentIAMEvaluator evaluates the synthesized Matt and Luke policies
// with @cloud-copilot/iam-simulate over the attack table and writes the table that the README
// shows (testdata/attack-table.md, checked like a golden file).
func TestLockMeaningWithAnIndependentIAMEvaluator(t *testing.T) {
	s := synth(t, pinned, nil)
	managed, err := os.ReadFile(filepath.Join("testdata", "AmazonEC2ReadOnlyAccess.json"))
	if err != nil {
		t.Fatal(err)
	}
	policiesOf := func(stack string) []iameval.Policy {
		tpl := s.Templates[stack]
		pols := []iameval.Policy{{Name: "AmazonEC2ReadOnlyAccess", Document: managed}}
		instID, _ := only(t, tpl, "AWS::EC2::Instance")
		values := map[string]any{`{"Fn::GetAtt":["` + instID + `","PublicIp"]}`: instancePublicIP}
		for _, imp := range []string{"battleground:ExportsOutputRefbattlegrounddefendersVPCCFD47DAA98AB357E"} {
			values[`{"Fn::ImportValue":"`+imp+`"}`] = instanceVpc
		}
		for id, p := range resources(tpl, "AWS::IAM::Policy") {
			doc, err := json.Marshal(cdktest.Substitute(t, props(p)["PolicyDocument"], values))
			if err != nil {
				t.Fatal(err)
			}
			pols = append(pols, iameval.Policy{Name: id, Document: doc})
		}
		return pols
	}
	var reqs []iameval.Request
	for _, stack := range []string{"matt", "luke"} {
		pols := policiesOf(stack)
		for _, sc := range scenarios {
			reqs = append(reqs, iameval.Request{
				Name:             stack + ": " + sc.name,
				Principal:        "arn:aws:sts::111122223333:assumed-role/" + stack + "-role/i-0123456789abcdef0",
				Action:           sc.action,
				Resource:         "*",
				Context:          sc.ctx,
				IdentityPolicies: pols,
			})
		}
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res {
		got[r.Name] = r.Decision
	}
	var table strings.Builder
	table.WriteString("| scenario | matt (no lock) | luke (locked) |\n|---|---|---|\n")
	for _, sc := range scenarios {
		m, l := got["matt: "+sc.name], got["luke: "+sc.name]
		t.Run(sc.name, func(t *testing.T) {
			if m != sc.matt {
				t.Errorf("matt: %s, want %s", m, sc.matt)
			}
			if l != sc.luke {
				t.Errorf("luke: %s, want %s", l, sc.luke)
			}
		})
		fmt.Fprintf(&table, "| %s | %s | %s |\n", sc.name, m, l)
	}
	goldenText(t, "attack-table.md", table.String())
}

// goldenText compares text with testdata/name, or rewrites it with -update.
func goldenText(t *testing.T, name, text string) {
	t.Helper()
	cdktest.GoldenText(t, filepath.Join("testdata", name), text)
}
