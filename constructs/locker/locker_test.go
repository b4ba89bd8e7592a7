package locker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/locker"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestTheLockerCanOnlyWriteLocksOnManagedRoles evaluates the locker's synthesized role policy
// with the independent IAM evaluator: the privilege-escalation test.
func TestTheLockerCanOnlyWriteLocksOnManagedRoles(t *testing.T) {
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755)
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("locker"), &awscdk.StackProps{Env: &awscdk.Environment{
			Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
		if _, err := locker.New(st, "locker", &locker.Props{Code: awslambda.Code_FromAsset(jsii.String(code), nil)}); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	tpl := asm.Templates["locker"]
	var docs []iameval.Policy
	values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws"}
	for id := range cdktest.Resources(tpl, "AWS::Logs::LogGroup") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:logs:us-east-1:111122223333:log-group:locker-logs:*"
	}
	for id := range cdktest.Resources(tpl, "AWS::SQS::Queue") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:sqs:us-east-1:111122223333:locker-dlq"
	}
	for id, p := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
		doc, err := json.Marshal(cdktest.Substitute(t, cdktest.Props(p)["PolicyDocument"], values))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, iameval.Policy{Name: id, Document: doc})
	}
	if len(docs) == 0 {
		t.Fatal("no role policy synthesized")
	}
	const acct = "arn:aws:iam::111122223333:"
	cases := []struct{ action, resource, want string }{
		{"iam:PutRolePolicy", acct + "role/defenders/web-role", iameval.Allowed},
		{"iam:GetRolePolicy", acct + "role/defenders/web-role", iameval.Allowed},
		{"iam:ListInstanceProfilesForRole", acct + "role/defenders/team/web-role", iameval.Allowed},
		{"ec2:DescribeInstances", "*", iameval.Allowed},
		{"iam:PutRolePolicy", acct + "role/Admin", iameval.ImplicitlyDenied},
		{"iam:PutRolePolicy", acct + "role/defendersx/evil", iameval.ImplicitlyDenied},
		{"iam:PutRolePolicy", "arn:aws:iam::444455556666:role/defenders/other-account", iameval.ImplicitlyDenied},
		{"iam:AttachRolePolicy", acct + "role/defenders/web-role", iameval.ImplicitlyDenied},
		{"iam:DeleteRolePolicy", acct + "role/defenders/web-role", iameval.ImplicitlyDenied},
		{"iam:UpdateAssumeRolePolicy", acct + "role/defenders/web-role", iameval.ImplicitlyDenied},
		{"iam:CreateRole", acct + "role/defenders/new-role", iameval.ImplicitlyDenied},
		{"iam:PassRole", acct + "role/defenders/web-role", iameval.ImplicitlyDenied},
		{"iam:PutUserPolicy", acct + "user/alice", iameval.ImplicitlyDenied},
		{"sts:AssumeRole", acct + "role/defenders/web-role", iameval.ImplicitlyDenied},
		{"ec2:TerminateInstances", "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0", iameval.ImplicitlyDenied},
	}
	var reqs []iameval.Request
	for _, c := range cases {
		reqs = append(reqs, iameval.Request{Name: c.action + " on " + c.resource,
			Principal: "arn:aws:sts::111122223333:assumed-role/locker-role/locker", Action: c.action, Resource: c.resource,
			Context: map[string]any{}, IdentityPolicies: docs})
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		t.Run(r.Name, func(t *testing.T) {
			if r.Decision != cases[i].want {
				t.Errorf("%s, want %s", r.Decision, cases[i].want)
			}
		})
	}
	raw, _ := json.Marshal(tpl)
	if strings.Contains(string(raw), `"iam:*"`) {
		t.Errorf("the locker role has iam:*")
	}
}

func TestLockerPropsAreValidated(t *testing.T) {
	for _, p := range []locker.Props{{RolePath: "/"}, {RolePath: "defenders"}, {RolePath: "/a b/"}} {
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "RolePath") {
			t.Errorf("RolePath %q: err = %v", p.RolePath, err)
		}
	}
}
