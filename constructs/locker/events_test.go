package locker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/constructs/locker"
	"github.com/defenders-cdk/defenders/internal/iameval"
	internallocker "github.com/defenders-cdk/defenders/internal/locker"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// synthLocker synthesizes a stack "locker" (account 111122223333, us-east-1) with a Locker of
// props and a stand-in bootstrap, and returns its template.
func synthLocker(t *testing.T, props locker.Props) map[string]any {
	t.Helper()
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	props.Code = awslambda.Code_FromAsset(jsii.String(code), nil)
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("locker"), &awscdk.StackProps{Env: &awscdk.Environment{
			Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
		if _, err := locker.New(st, "locker", &props); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	return asm.Templates["locker"]
}

// rulePatterns returns the event patterns of the template's rules, by detail-type.
func rulePatterns(t *testing.T, tpl map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range cdktest.Resources(tpl, "AWS::Events::Rule") {
		p, ok := cdktest.Props(r)["EventPattern"].(map[string]any)
		if !ok {
			continue
		}
		dt, _ := p["detail-type"].([]any)
		if len(dt) != 1 {
			t.Fatalf("rule pattern %v has detail-types %v", p, dt)
		}
		out[dt[0].(string)] = p
		if s, ok := cdktest.Props(r)["State"]; ok && s != "ENABLED" {
			t.Errorf("rule %v is %v", p, s)
		}
	}
	return out
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestTheRulesRouteWhatTheLockerParses(t *testing.T) {
	patterns := rulePatterns(t, synthLocker(t, locker.Props{}))
	t.Run("the CloudTrail rule matches exactly the API calls the locker parses, successful ones from EC2", func(t *testing.T) {
		p, ok := patterns[internallocker.DetailTypeAPICall]
		if !ok {
			t.Fatalf("no rule on %q: %v", internallocker.DetailTypeAPICall, patterns)
		}
		detail := p["detail"].(map[string]any)
		if got := strs(detail["eventName"]); !slices.Equal(got, internallocker.AddressAPICalls) {
			t.Errorf("eventName %q, want %q", got, internallocker.AddressAPICalls)
		}
		if got := strs(p["source"]); !slices.Equal(got, []string{internallocker.SourceEC2}) {
			t.Errorf("source %q", got)
		}
		if got := strs(detail["eventSource"]); !slices.Equal(got, []string{"ec2.amazonaws.com"}) {
			t.Errorf("eventSource %q", got)
		}
		if b, _ := json.Marshal(detail["errorCode"]); string(b) != `[{"exists":false}]` {
			t.Errorf("errorCode %s, want only successful calls", b)
		}
	})
	t.Run("the state-change rule routes shutting-down, the last moment EC2 shows the instance's profile", func(t *testing.T) {
		p := patterns[internallocker.DetailTypeStateChange]
		got := strs(p["detail"].(map[string]any)["state"])
		if !slices.Equal(got, []string{"running", "stopped", "shutting-down", "terminated"}) {
			t.Errorf("states %q", got)
		}
	})
	t.Run("every event the rules route parses", func(t *testing.T) {
		for _, name := range internallocker.AddressAPICalls {
			raw := `{"detail-type":"AWS API Call via CloudTrail","source":"aws.ec2","detail":{"eventSource":"ec2.amazonaws.com","eventName":"` + name + `"}}`
			if _, err := internallocker.ParseEvent([]byte(raw)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

// TestTheLambdaReadsTheTrustTheConstructWrites feeds the synthesized Environment to the locker
// Lambda's own loader: the Trust the construct was given is the Trust the locker renders.
func TestTheLambdaReadsTheTrustTheConstructWrites(t *testing.T) {
	trust := lock.Trust{EgressPrefixes: []string{"198.51.100.0/24", "203.0.113.9"}, SharedVPCEndpoints: []string{"vpce-0aaaabbbbccccdddd"}}
	tpl := synthLocker(t, locker.Props{Trust: trust})
	var vars map[string]any
	for _, fn := range cdktest.Resources(tpl, "AWS::Lambda::Function") {
		vars, _ = cdktest.Props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any)
	}
	c, err := internallocker.ConfigFromEnv(func(k string) string { s, _ := vars[k].(string); return s })
	if err != nil {
		t.Fatalf("the Lambda refuses the construct's environment %v: %v", vars, err)
	}
	want, _ := lockpolicy.Trust(trust).Validate(nil)
	if !slices.Equal(c.Trust.EgressPrefixes, want.EgressPrefixes) || !slices.Equal(c.Trust.SharedVPCEndpoints, want.SharedVPCEndpoints) {
		t.Errorf("the Lambda trusts %+v, want %+v (environment %v)", c.Trust, want, vars)
	}
}

func TestABadTrustPropIsRefused(t *testing.T) {
	tests := []struct {
		name  string
		trust lock.Trust
		want  string
	}{
		{"a private egress prefix", lock.Trust{EgressPrefixes: []string{"10.0.0.0/8"}}, "Props.Trust"},
		{"the whole internet", lock.Trust{EgressPrefixes: []string{"0.0.0.0/0"}}, "Props.Trust"},
		{"a VPC id as a shared endpoint", lock.Trust{SharedVPCEndpoints: []string{"vpc-0123456789abcdef0"}}, "Props.Trust"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := locker.Props{Trust: tt.trust}
			if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

// TestTheLockerCanAttachOnlyAWSDenyAll evaluates the locker's synthesized policy with the
// independent IAM evaluator: AttachRolePolicy and DetachRolePolicy are allowed for AWSDenyAll on
// managed roles and for nothing else, so the last resort cannot grant a managed role anything.
func TestTheLockerCanAttachOnlyAWSDenyAll(t *testing.T) {
	tpl := synthLocker(t, locker.Props{})
	values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws"}
	for id := range cdktest.Resources(tpl, "AWS::Logs::LogGroup") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:logs:us-east-1:111122223333:log-group:locker-logs:*"
	}
	for id := range cdktest.Resources(tpl, "AWS::SQS::Queue") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:sqs:us-east-1:111122223333:locker-dlq"
	}
	docs := cdktest.PolicyDocuments(t, tpl, values)
	const (
		web     = "arn:aws:iam::111122223333:role/defenders/web-role"
		denyAll = "arn:aws:iam::aws:policy/AWSDenyAll"
	)
	tests := []struct {
		name, action, resource, policy, want string
	}{
		{"it may attach AWSDenyAll to a managed role", "iam:AttachRolePolicy", web, denyAll, iameval.Allowed},
		{"it may detach AWSDenyAll from a managed role", "iam:DetachRolePolicy", web, denyAll, iameval.Allowed},
		{"it may not attach AdministratorAccess to a managed role", "iam:AttachRolePolicy", web, "arn:aws:iam::aws:policy/AdministratorAccess", iameval.ImplicitlyDenied},
		{"it may not attach a customer managed policy to a managed role", "iam:AttachRolePolicy", web, "arn:aws:iam::111122223333:policy/AWSDenyAll", iameval.ImplicitlyDenied},
		{"it may not attach AWSDenyAll of another partition", "iam:AttachRolePolicy", web, "arn:aws-cn:iam::aws:policy/AWSDenyAll", iameval.ImplicitlyDenied},
		{"it may not detach another policy from a managed role", "iam:DetachRolePolicy", web, "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess", iameval.ImplicitlyDenied},
		{"it may not attach AWSDenyAll to Admin at /", "iam:AttachRolePolicy", "arn:aws:iam::111122223333:role/Admin", denyAll, iameval.ImplicitlyDenied},
		{"it may not detach AWSDenyAll from a role under /defendersx/", "iam:DetachRolePolicy", "arn:aws:iam::111122223333:role/defendersx/evil", denyAll, iameval.ImplicitlyDenied},
		{"it may not attach without saying which policy", "iam:AttachRolePolicy", web, "", iameval.ImplicitlyDenied},
		{"it may read a managed role's tags", "iam:ListRoleTags", web, "", iameval.Allowed},
		{"it may list a managed role's managed policies", "iam:ListAttachedRolePolicies", web, "", iameval.Allowed},
		{"it may not read Admin's tags", "iam:ListRoleTags", "arn:aws:iam::111122223333:role/Admin", "", iameval.ImplicitlyDenied},
		{"it may not tag a managed role", "iam:TagRole", web, "", iameval.ImplicitlyDenied},
		{"it may describe route tables", "ec2:DescribeRouteTables", "*", "", iameval.Allowed},
		{"it may describe NAT gateways", "ec2:DescribeNatGateways", "*", "", iameval.Allowed},
		{"it may describe Elastic IPs", "ec2:DescribeAddresses", "*", "", iameval.Allowed},
		{"it may not associate an Elastic IP", "ec2:AssociateAddress", "*", "", iameval.ImplicitlyDenied},
	}
	reqs := make([]iameval.Request, 0, len(tests))
	for _, tt := range tests {
		ctx := map[string]any{}
		if tt.policy != "" {
			ctx["iam:PolicyARN"] = tt.policy
		}
		reqs = append(reqs, iameval.Request{Name: tt.name, Principal: "arn:aws:sts::111122223333:assumed-role/locker-role/locker",
			Action: tt.action, Resource: tt.resource, Context: ctx, IdentityPolicies: docs})
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res[i].Decision != tt.want {
				t.Errorf("%s on %s with %q: %s, want %s", tt.action, tt.resource, tt.policy, res[i].Decision, tt.want)
			}
		})
	}
}
