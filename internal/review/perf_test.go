package review

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// bigTemplate returns a realistic template of n resources (n a multiple of 10) plus its VPC,
// whose logical ids carry prefix: per unit an
// instance role, its instance profile, a launch template, an instance, a security group with
// inline rules, a standalone ingress rule, a lock policy tied to the instance's Elastic IP, a
// customer managed policy, the Elastic IP and its association. One unit in three is
// unlocked, one in five opens SSH to the world, one in seven allows IMDSv1, one in four writes
// its lock as a JSON string, one in eleven acknowledges its findings.
func bigTemplate(prefix string, n int) map[string]any {
	res := map[string]any{
		"Vpc": map[string]any{"Type": "AWS::EC2::VPC", "Properties": map[string]any{"CidrBlock": "10.0.0.0/16"}},
	}
	trust := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}}
	for i := 0; i < n/10; i++ {
		id := func(s string) string { return fmt.Sprintf("%s%s%04d", prefix, s, i) }
		path := func(s string) map[string]any {
			return map[string]any{"aws:cdk:path": fmt.Sprintf("%s/Service%04d/%s/Resource", prefix, i, s)}
		}
		role := map[string]any{"Type": "AWS::IAM::Role", "Metadata": path("Role"), "Properties": map[string]any{
			"AssumeRolePolicyDocument": trust,
			"ManagedPolicyArns":        []any{map[string]any{"Ref": id("Access")}, "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
		}}
		if i%11 == 0 {
			role["Metadata"] = map[string]any{"aws:cdk:path": fmt.Sprintf("%s/Service%04d/Role/Resource", prefix, i),
				AcknowledgeKey: []any{map[string]any{"rule": RuleUnlockedRole, "reason": "batch worker without credentials worth stealing"}}}
		}
		res[id("Role")] = role
		res[id("Profile")] = map[string]any{"Type": "AWS::IAM::InstanceProfile", "Metadata": path("Profile"),
			"Properties": map[string]any{"Roles": []any{map[string]any{"Ref": id("Role")}}}}
		tokens := "required"
		if i%7 == 0 {
			tokens = "optional"
		}
		res[id("Template")] = map[string]any{"Type": "AWS::EC2::LaunchTemplate", "Metadata": path("LaunchTemplate"),
			"Properties": map[string]any{"LaunchTemplateData": map[string]any{
				"MetadataOptions":    map[string]any{"HttpTokens": tokens},
				"IamInstanceProfile": map[string]any{"Arn": map[string]any{"Fn::GetAtt": []any{id("Profile"), "Arn"}}},
			}}}
		res[id("Instance")] = map[string]any{"Type": "AWS::EC2::Instance", "Metadata": path("Instance"), "Properties": map[string]any{
			"ImageId":          "ami-0123456789abcdef0",
			"InstanceType":     "t3.micro",
			"LaunchTemplate":   map[string]any{"LaunchTemplateId": map[string]any{"Ref": id("Template")}, "Version": map[string]any{"Fn::GetAtt": []any{id("Template"), "LatestVersionNumber"}}},
			"SecurityGroupIds": []any{map[string]any{"Fn::GetAtt": []any{id("Group"), "GroupId"}}},
		}}
		src := "203.0.113.10/32"
		if i%5 == 0 {
			src = "0.0.0.0/0"
		}
		res[id("Group")] = map[string]any{"Type": "AWS::EC2::SecurityGroup", "Metadata": path("Group"), "Properties": map[string]any{
			"GroupDescription": "service",
			"VpcId":            map[string]any{"Ref": "Vpc"},
			"SecurityGroupIngress": []any{
				map[string]any{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": src, "Description": "SSH"},
				map[string]any{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0", "Description": "HTTPS"},
			},
		}}
		res[id("FromPeer")] = map[string]any{"Type": "AWS::EC2::SecurityGroupIngress", "Properties": map[string]any{
			"GroupId": map[string]any{"Fn::GetAtt": []any{id("Group"), "GroupId"}}, "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
			"SourceSecurityGroupId": map[string]any{"Fn::GetAtt": []any{fmt.Sprintf("%sGroup%04d", prefix, (i+1)%(n/10)), "GroupId"}},
		}}
		res[id("Address")] = map[string]any{"Type": "AWS::EC2::EIP", "Properties": map[string]any{"Domain": "vpc"}}
		res[id("Association")] = map[string]any{"Type": "AWS::EC2::EIPAssociation", "Properties": map[string]any{
			"AllocationId": map[string]any{"Fn::GetAtt": []any{id("Address"), "AllocationId"}}, "InstanceId": map[string]any{"Ref": id("Instance")}}}
		res[id("Access")] = map[string]any{"Type": "AWS::IAM::ManagedPolicy", "Properties": map[string]any{"PolicyDocument": map[string]any{
			"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Allow", "Action": []any{"s3:GetObject", "s3:PutObject"},
				"Resource": fmt.Sprintf("arn:aws:s3:::bucket-%04d/*", i)}}}}}
		if i%3 != 0 {
			lock := map[string]any{"Version": "2012-10-17", "Statement": []any{
				map[string]any{"Sid": "DenyPublicCallsFromOtherAddresses", "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": map[string]any{
					"NotIpAddress": map[string]any{"aws:SourceIp": map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Ref": id("Address")}, "/32"}}}},
					"Null":         map[string]any{"aws:SourceIp": "false"}, "BoolIfExists": map[string]any{"aws:ViaAWSService": "false"}}},
				map[string]any{"Sid": "DenyEndpointCallsFromOtherVpcs", "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": map[string]any{
					"StringNotEquals": map[string]any{"aws:SourceVpc": map[string]any{"Ref": "Vpc"}},
					"Null":            map[string]any{"aws:SourceIp": "true"}, "BoolIfExists": map[string]any{"aws:ViaAWSService": "false"}}},
			}}
			var doc any = lock
			if i%4 == 0 {
				b, _ := json.Marshal(map[string]any{"Statement": []any{
					map[string]any{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": map[string]any{
						"NotIpAddress": map[string]any{"aws:SourceIp": "${" + id("Address") + "}/32"}, "Null": map[string]any{"aws:SourceIp": "false"}}},
					map[string]any{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": map[string]any{"Null": map[string]any{"aws:SourceIp": "true"}}},
				}})
				doc = map[string]any{"Fn::Sub": string(b)}
			}
			res[id("Lock")] = map[string]any{"Type": "AWS::IAM::Policy", "Metadata": path("Lock"), "Properties": map[string]any{
				"PolicyName": "defenders-lock", "Roles": []any{map[string]any{"Ref": id("Role")}}, "PolicyDocument": doc}}
		} else {
			res[id("Lock")] = map[string]any{"Type": "AWS::SSM::Parameter", "Properties": map[string]any{"Type": "String", "Value": "unlocked"}}
		}
	}
	return map[string]any{"AWSTemplateFormatVersion": "2010-09-09", "Resources": res}
}

// writeBigAssembly writes a cloud assembly of stacks stacks of n+1 resources each
// (bigTemplate; CloudFormation allows 500 resources per stack and 1 MB per template) and
// returns its directory.
func writeBigAssembly(tb testing.TB, stacks, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	artifacts := map[string]any{}
	for k := range stacks {
		name := fmt.Sprintf("service%02d", k)
		b, err := json.Marshal(bigTemplate(fmt.Sprintf("s%02d", k), n))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".template.json"), b, 0o644); err != nil {
			tb.Fatal(err)
		}
		artifacts[name] = map[string]any{"type": "aws:cloudformation:stack", "environment": "aws://123456789012/eu-west-1",
			"properties": map[string]any{"templateFile": name + ".template.json"}}
	}
	b, err := json.Marshal(map[string]any{"version": "48.0.0", "artifacts": artifacts})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkReview5000 loads and reviews an assembly of 5,010 resources (10 stacks of 501)
// and renders both reports: go test ./internal/review -run '^$' -bench Review5000 -cpu 1
func BenchmarkReview5000(b *testing.B) {
	path := writeBigAssembly(b, 10, 500)
	b.ResetTimer()
	for range b.N {
		rep, err := Review(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := rep.WriteMarkdown(discard{}); err != nil {
			b.Fatal(err)
		}
		if err := rep.WriteJSON(discard{}); err != nil {
			b.Fatal(err)
		}
	}
}

// discard is an io.Writer that drops everything.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestAFiveThousandResourceTemplateIsReviewedInUnderHalfASecond(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" || raceDetector {
		t.Skip("a timing test: make bench runs it (DEFENDERS_FIGURES=1); meaningless under the race detector")
	}
	path := writeBigAssembly(t, 10, 500)
	rep, err := Review(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Roles) != 500 || rep.Errors == 0 || len(rep.Acknowledged) == 0 {
		t.Fatalf("unexpected review: %d roles, %d errors, %d acknowledged", len(rep.Roles), rep.Errors, len(rep.Acknowledged))
	}
	// On one core, as the issue asks; the best of three runs, so that a busy machine does
	// not fail the test by itself.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	best := time.Hour
	for range 3 {
		start := time.Now()
		rep, err := Review(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteMarkdown(discard{}); err != nil {
			t.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	t.Logf("5,010 resources reviewed and rendered in %v", best)
	if best > 500*time.Millisecond {
		t.Errorf("review of 5,010 resources took %v, want under 0.5 s", best)
	}
}
