package locker_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/locker"
	"github.com/defenders-cdk/defenders/internal/iameval"
	internallocker "github.com/defenders-cdk/defenders/internal/locker"
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
	values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws"}
	for id := range cdktest.Resources(tpl, "AWS::Logs::LogGroup") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:logs:us-east-1:111122223333:log-group:locker-logs:*"
	}
	for id := range cdktest.Resources(tpl, "AWS::SQS::Queue") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:sqs:us-east-1:111122223333:locker-dlq"
	}
	docs := cdktest.PolicyDocuments(t, tpl, values)
	const acct = "arn:aws:iam::111122223333:"
	cases := []cdktest.Decision{
		{Action: "iam:PutRolePolicy", Resource: acct + "role/defenders/web-role", Want: iameval.Allowed},
		{Action: "iam:GetRolePolicy", Resource: acct + "role/defenders/web-role", Want: iameval.Allowed},
		{Action: "iam:ListInstanceProfilesForRole", Resource: acct + "role/defenders/team/web-role", Want: iameval.Allowed},
		{Action: "ec2:DescribeInstances", Resource: "*", Want: iameval.Allowed},
		{Action: "iam:PutRolePolicy", Resource: acct + "role/Admin", Want: iameval.ImplicitlyDenied},
		{Action: "iam:PutRolePolicy", Resource: acct + "role/defendersx/evil", Want: iameval.ImplicitlyDenied},
		{Action: "iam:PutRolePolicy", Resource: "arn:aws:iam::444455556666:role/defenders/other-account", Want: iameval.ImplicitlyDenied},
		{Action: "iam:AttachRolePolicy", Resource: acct + "role/defenders/web-role", Want: iameval.ImplicitlyDenied},
		{Action: "iam:DeleteRolePolicy", Resource: acct + "role/defenders/web-role", Want: iameval.ImplicitlyDenied},
		{Action: "iam:UpdateAssumeRolePolicy", Resource: acct + "role/defenders/web-role", Want: iameval.ImplicitlyDenied},
		{Action: "iam:CreateRole", Resource: acct + "role/defenders/new-role", Want: iameval.ImplicitlyDenied},
		{Action: "iam:PassRole", Resource: acct + "role/defenders/web-role", Want: iameval.ImplicitlyDenied},
		{Action: "iam:PutUserPolicy", Resource: acct + "user/alice", Want: iameval.ImplicitlyDenied},
		{Action: "sts:AssumeRole", Resource: acct + "role/defenders/web-role", Want: iameval.ImplicitlyDenied},
		{Action: "ec2:TerminateInstances", Resource: "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0", Want: iameval.ImplicitlyDenied},
	}
	cdktest.ExpectDecisions(t, "arn:aws:sts::111122223333:assumed-role/locker-role/locker", docs, cases)
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

// TestTheLambdaReadsTheEnvironmentTheConstructWrites feeds the synthesized Environment to the
// locker Lambda's own loader: a variable renamed on one side only fails here, and the path the
// function manages is the path its IAM permissions name.
func TestTheLambdaReadsTheEnvironmentTheConstructWrites(t *testing.T) {
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755)
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("locker"), nil)
		if _, err := locker.New(st, "locker", &locker.Props{RolePath: "/defenders/web/", Code: awslambda.Code_FromAsset(jsii.String(code), nil)}); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	var vars map[string]any
	for _, fn := range cdktest.Resources(asm.Templates["locker"], "AWS::Lambda::Function") {
		vars, _ = cdktest.Props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
	}
	c, err := internallocker.ConfigFromEnv(func(k string) string { s, _ := vars[k].(string); return s })
	if err != nil {
		t.Fatalf("the Lambda refuses the construct's environment %v: %v", vars, err)
	}
	if c.RolePath != "/defenders/web/" || c.PolicyName != locker.PolicyName {
		t.Errorf("config %+v, want the construct's path and policy name", c)
	}
	if _, err := internallocker.ConfigFromEnv(func(string) string { return "" }); err == nil {
		t.Error("an empty environment was accepted: a renamed variable would go unnoticed")
	}
}

// TestTheLockerTakesItsCodeFromAnS3Location: with Props.Code from a bucket (a literal name, or a
// Fn::Sub of the Region as a StackSet member template names it), the function's Code is that
// bucket and key, and the stack stages no asset (a member account has no CDK bootstrap bucket).
func TestTheLockerTakesItsCodeFromAnS3Location(t *testing.T) {
	cases := []struct {
		name       string
		bucket     func(st awscdk.Stack) *string
		wantBucket string // compact JSON of Code.S3Bucket
	}{
		{"a bucket named literally", func(awscdk.Stack) *string { return jsii.String("code-bucket-eu-west-1") }, `"code-bucket-eu-west-1"`},
		{"a bucket named per Region with Fn::Sub", func(awscdk.Stack) *string {
			return awscdk.Fn_Sub(jsii.String("code-bucket-${AWS::Region}"), nil)
		}, `{"Fn::Sub":"code-bucket-${AWS::Region}"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := cdktest.NewApp(t, nil)
			var asm *cdktest.Assembly
			cdktest.NoPanic(t, func() {
				st := awscdk.NewStack(app, jsii.String("locker"), nil)
				b := awss3.Bucket_FromBucketName(st, jsii.String("Code"), c.bucket(st))
				if _, err := locker.New(st, "locker", &locker.Props{Code: awslambda.Code_FromBucket(b, jsii.String("locker/abc.zip"), nil)}); err != nil {
					t.Fatal(err)
				}
				asm = cdktest.Synth(t, app)
			})
			fns := cdktest.Resources(asm.Templates["locker"], "AWS::Lambda::Function")
			if len(fns) != 1 {
				t.Fatalf("%d functions", len(fns))
			}
			for _, fn := range fns {
				code, _ := cdktest.Props(fn)["Code"].(map[string]any)
				got, _ := json.Marshal(code["S3Bucket"])
				if string(got) != c.wantBucket || code["S3Key"] != "locker/abc.zip" {
					t.Errorf("Code = %v, want S3Bucket %s and S3Key locker/abc.zip", code, c.wantBucket)
				}
			}
			if assets, _ := filepath.Glob(filepath.Join(asm.Dir, "asset.*")); len(assets) != 0 {
				t.Errorf("assets staged: %v", assets)
			}
		})
	}
}
