package lock_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// ec2ReadOnlyDoc stands in for the role's grants in every IAM scenario: the lock only denies,
// so every "denied" below is the lock's doing.
var ec2ReadOnlyDoc = json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)

// scenario is one request against one role's lock and the decision the lock must produce.
type scenario struct {
	role, name string
	ctx        map[string]any
	want       string
}

// evaluateLocks substitutes values into the lock of each scenario's role (found in tpl by
// role logical id prefix) and checks every decision with the independent IAM evaluator, in
// one run.
func evaluateLocks(t *testing.T, tpl map[string]any, values map[string]any, rows []scenario) {
	t.Helper()
	var reqs []iameval.Request
	want := map[string]string{}
	for _, r := range rows {
		_, p := policyOf(t, tpl, r.role)
		doc, err := json.Marshal(cdktest.Substitute(t, cdktest.Props(p)["PolicyDocument"], values))
		if err != nil {
			t.Fatal(err)
		}
		name := r.role + ": " + r.name
		want[name] = r.want
		reqs = append(reqs, iameval.Request{
			Name: name, Principal: "arn:aws:sts::111122223333:assumed-role/" + r.role + "/i-0123456789abcdef0",
			Action: "ec2:DescribeInstances", Resource: "*", Context: r.ctx,
			IdentityPolicies: []iameval.Policy{{Name: "ec2-read-only", Document: ec2ReadOnlyDoc}, {Name: "lock", Document: doc}},
		})
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

// rawInstance adds an AWS::EC2::Instance written as a CfnInstance, with its own CfnRole and
// instance profile (both with logical ids that start with id), shaped by props.
func rawInstance(stack awscdk.Stack, id string, props *awsec2.CfnInstanceProps) awsec2.CfnInstance {
	role := awsiam.NewCfnRole(stack, jsii.String(id+"Role"), &awsiam.CfnRoleProps{
		AssumeRolePolicyDocument: map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}},
	})
	profile := awsiam.NewCfnInstanceProfile(stack, jsii.String(id+"Profile"), &awsiam.CfnInstanceProfileProps{
		Roles: &[]interface{}{role.Ref()},
	})
	props.ImageId = jsii.String("ami-0123456789abcdef0")
	props.InstanceType = jsii.String("t3.micro")
	props.IamInstanceProfile = profile.Ref()
	return awsec2.NewCfnInstance(stack, jsii.String(id), props)
}

// errorsAt returns the error annotations of the construct at path (exactly) whose text
// contains substr.
func errorsAt(asm *cdktest.Assembly, path, substr string) []cdktest.Message {
	var out []cdktest.Message
	for _, m := range asm.Errors(substr) {
		if strings.TrimPrefix(m.Path, "/") == path {
			out = append(out, m)
		}
	}
	return out
}

// pathOf is the construct path of c.
func pathOf(c constructs.IConstruct) string { return *c.Node().Path() }

// roleTags returns the Tags of the AWS::IAM::Role with logical id prefix as key -> value.
func roleTags(t *testing.T, tpl map[string]any, prefix string) map[string]any {
	t.Helper()
	id := logicalID(t, tpl, "AWS::IAM::Role", prefix)
	out := map[string]any{}
	tags, _ := cdktest.Props(cdktest.Resources(tpl, "AWS::IAM::Role")[id])["Tags"].([]any)
	for _, tag := range tags {
		m, _ := tag.(map[string]any)
		k, _ := m["Key"].(string)
		out[k] = m["Value"]
	}
	return out
}

// hasLock reports whether some lock policy of tpl names a role whose logical id starts with
// rolePrefix.
func hasLock(tpl map[string]any, rolePrefix string) bool {
	for id, p := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
		b, _ := json.Marshal(cdktest.Props(p)["Roles"])
		if strings.HasPrefix(id, "DefendersLock") && strings.Contains(string(b), `"`+rolePrefix) {
			return true
		}
	}
	return false
}

// policyOf returns the lock policy of the role with logical id prefix rolePrefix: the lock of
// lock.Everything (lockOf) or any other AWS::IAM::Policy that names the role (lock.New,
// lock.ForInstance).
func policyOf(t *testing.T, tpl map[string]any, rolePrefix string) (string, map[string]any) {
	t.Helper()
	if hasLock(tpl, rolePrefix) {
		return lockOf(t, tpl, rolePrefix)
	}
	for id, p := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
		b, _ := json.Marshal(cdktest.Props(p)["Roles"])
		if strings.Contains(string(b), `"`+rolePrefix) {
			return id, p
		}
	}
	t.Fatalf("no policy for role %s*", rolePrefix)
	return "", nil
}
