package detector_test

// Organisation mode: the central bus rule, the member role grant (evaluated with the IAM
// evaluator) and the environment the function reads.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

const (
	testOrgID      = "o-a1b2c3d4e5"
	testMemberRole = "defenders-inventory"
)

// synthOrg synthesizes a detector in organisation mode whose central bus is a custom bus of
// the stack (busName "default" imports the account's default bus instead). change edits the
// props before New.
func synthOrg(t *testing.T, busName string, change func(*detector.Props)) map[string]any {
	t.Helper()
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755)
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("det"), &awscdk.StackProps{Env: &awscdk.Environment{
			Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
		var bus awsevents.IEventBus
		if busName == "default" {
			bus = awsevents.EventBus_FromEventBusName(st, jsii.String("Default"), jsii.String("default"))
		} else {
			bus = awsevents.NewEventBus(st, jsii.String("Central"), &awsevents.EventBusProps{EventBusName: jsii.String(busName)})
		}
		p := detector.Props{
			Organization: &detector.Organization{ID: testOrgID, Bus: bus, MemberRoleName: testMemberRole},
			Code:         awslambda.Code_FromAsset(jsii.String(code), nil),
		}
		if change != nil {
			change(&p)
		}
		if _, err := detector.New(st, "detector", &p); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	return asm.Templates["det"]
}

func TestOrganisationModeWiring(t *testing.T) {
	tpl := synthOrg(t, "defenders-central", nil)
	rules := cdktest.Resources(tpl, "AWS::Events::Rule")
	t.Run("the detector gets a rule on the central bus with its local rule's pattern and state", func(t *testing.T) {
		if len(rules) != 2 {
			t.Fatalf("%d rules, want the local one and the central one: %v", len(rules), cdktest.Keys(rules))
		}
		var local, central map[string]any
		for _, r := range rules {
			p := cdktest.Props(r)
			if p["EventBusName"] == nil {
				local = p
			} else {
				central = p
			}
		}
		if local == nil || central == nil {
			t.Fatalf("rules %v: want one on the default bus and one on the central bus", rules)
		}
		if b, _ := json.Marshal(central["EventBusName"]); !strings.Contains(string(b), "Central") {
			t.Errorf("central rule on bus %s, want the Central bus", b)
		}
		lp, _ := json.Marshal(local["EventPattern"])
		cp, _ := json.Marshal(central["EventPattern"])
		if string(lp) != string(cp) {
			t.Errorf("central pattern %s differs from the local one %s", cp, lp)
		}
		if central["State"] != detector.RuleState {
			t.Errorf("central rule state %v, want %s (read-only events)", central["State"], detector.RuleState)
		}
		if b, _ := json.Marshal(central["Targets"]); !strings.Contains(string(b), "detectorFunction") {
			t.Errorf("central rule targets %s, want the function", b)
		}
	})
	t.Run("the exported pattern is the rules' pattern", func(t *testing.T) {
		var want map[string]any
		for _, r := range rules {
			want = cdktest.Props(r)["EventPattern"].(map[string]any)
		}
		b, _ := json.Marshal(want)
		for _, key := range []string{`"detail-type":["AWS API Call via CloudTrail"]`, `{"wildcard":"*:i-*"}`, `"invokedBy":[{"exists":false}]`} {
			if !strings.Contains(string(b), key) {
				t.Errorf("pattern %s lacks %s", b, key)
			}
		}
		got := detector.InstanceSessionPattern()
		if got.DetailType == nil || *(*got.DetailType)[0] != "AWS API Call via CloudTrail" || got.Detail == nil {
			t.Errorf("InstanceSessionPattern() = %+v", got)
		}
	})
	t.Run("the function knows the organisation and the member role", func(t *testing.T) {
		_, fn := one(t, tpl, "AWS::Lambda::Function")
		b, _ := json.Marshal(fn["Environment"])
		for _, want := range []string{`"` + detector.EnvOrganizationID + `":"` + testOrgID + `"`, `"` + detector.EnvMemberRoleName + `":"` + testMemberRole + `"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("environment %s lacks %s", b, want)
			}
		}
	})
	t.Run("the Lambda accepts the environment", func(t *testing.T) {
		_, fn := one(t, tpl, "AWS::Lambda::Function")
		roleID, _ := one(t, tpl, "AWS::IAM::Role")
		topicID, _ := one(t, tpl, "AWS::SNS::Topic")
		queueID, _ := one(t, tpl, "AWS::SQS::Queue")
		vars := cdktest.Substitute(t, fn["Environment"].(map[string]any)["Variables"], map[string]any{
			`{"Ref":"` + topicID + `"}`:               "arn:aws:sns:us-east-1:111122223333:alerts",
			`{"Ref":"` + queueID + `"}`:               "https://sqs.us-east-1.amazonaws.com/111122223333/dlq",
			`{"Fn::GetAtt":["` + roleID + `","Arn"]}`: "arn:aws:iam::111122223333:role/det-Role",
		}).(map[string]any)
		s, err := detect.LoadSettings(func(k string) string { v, _ := vars[k].(string); return v })
		if err != nil {
			t.Fatal(err)
		}
		if !s.Organization() || s.OrganizationID != testOrgID || s.MemberRoleName != testMemberRole ||
			s.MemberRoleARN("444455556666") != "arn:aws:iam::444455556666:role/"+testMemberRole {
			t.Errorf("settings %+v", s)
		}
	})
	t.Run("without Organization nothing of it is synthesized", func(t *testing.T) {
		tpl := synth(t, &detector.Props{})
		if n := len(cdktest.Resources(tpl, "AWS::Events::Rule")); n != 1 {
			t.Errorf("%d rules, want the local one", n)
		}
		_, fn := one(t, tpl, "AWS::Lambda::Function")
		if b, _ := json.Marshal(fn["Environment"]); strings.Contains(string(b), detector.EnvOrganizationID) {
			t.Errorf("environment %s", b)
		}
		for _, r := range cdktest.Resources(tpl, "AWS::IAM::Policy") {
			if b, _ := json.Marshal(r); strings.Contains(string(b), "sts:AssumeRole") {
				t.Errorf("a policy grants sts:AssumeRole without Organization: %s", b)
			}
		}
	})
}

func TestOrganisationOnTheDefaultBusMakesNoSecondRule(t *testing.T) {
	tpl := synthOrg(t, "default", nil)
	if n := len(cdktest.Resources(tpl, "AWS::Events::Rule")); n != 1 {
		t.Errorf("%d rules: the local rule already reads the default bus, a second would invoke the function twice per event", n)
	}
}

// TestTheDetectorMayAssumeTheMemberRoleOnlyInTheOrganisation evaluates the synthesized role
// policy with the IAM evaluator, with the member role's trust policy as the resource policy:
// the member role of an account of the organisation may be assumed; the same role name in an
// account of another organisation may not, even when that role trusts the detector; no other
// role may be.
func TestTheDetectorMayAssumeTheMemberRoleOnlyInTheOrganisation(t *testing.T) {
	tpl := synthOrg(t, "defenders-central", nil)
	docs := roleDocuments(t, tpl)
	const (
		detectorRole = "arn:aws:iam::111122223333:role/det-Role"
		session      = "arn:aws:sts::111122223333:assumed-role/det-Role/det-Function"
		member       = "444455556666"
		foreign      = "999988887777"
		otherOrg     = "o-zzzzzzzzzz"
	)
	// The member role's trust: the detector's role, from within the organisation (what the
	// member template writes). The foreign account's role trusts the detector outright.
	trust := func(cond string) *iameval.Policy {
		return &iameval.Policy{Name: "trust", Document: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` +
			`"Principal":{"AWS":"` + detectorRole + `"},"Action":"sts:AssumeRole"` + cond + `}]}`)}
	}
	memberTrust := trust(`,"Condition":{"StringEquals":{"aws:PrincipalOrgID":"` + testOrgID + `"}}`)
	cases := []struct {
		name, account, role, resourceOrg string
		trust                            *iameval.Policy
		want                             string
	}{
		{"the member role of an account of the organisation can be assumed", member, testMemberRole, testOrgID, memberTrust, iameval.Allowed},
		{"the member role in the detector's own account can be assumed", "111122223333", testMemberRole, testOrgID, memberTrust, iameval.Allowed},
		{"a role of that name in another organisation cannot be assumed, even if it trusts the detector", foreign, testMemberRole, otherOrg, trust(""), iameval.ImplicitlyDenied},
		{"another role of an account of the organisation cannot be assumed", member, "OrganizationAccountAccessRole", testOrgID, trust(""), iameval.ImplicitlyDenied},
		{"a role of that name under another path cannot be assumed", member, "admin/" + testMemberRole, testOrgID, trust(""), iameval.ImplicitlyDenied},
		{"a role whose name ends with the member role's cannot be assumed", member, "x" + testMemberRole, testOrgID, trust(""), iameval.ImplicitlyDenied},
	}
	reqs := make([]iameval.Request, len(cases))
	for i, c := range cases {
		reqs[i] = iameval.Request{Name: c.name, Principal: session, Action: "sts:AssumeRole",
			Resource: "arn:aws:iam::" + c.account + ":role/" + c.role, ResourceAccount: c.account,
			Context:          map[string]any{"aws:ResourceOrgID": c.resourceOrg, "aws:PrincipalOrgID": testOrgID},
			IdentityPolicies: docs, ResourcePolicy: c.trust}
	}
	res, err := iameval.Evaluate(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if res[i].Decision != c.want {
				t.Errorf("%s, want %s\n%s", res[i].Decision, c.want, res[i].Explain)
			}
		})
	}
}

func TestOrganisationPropsAreValidated(t *testing.T) {
	bus := awsevents.EventBus_FromEventBusArn(awscdk.NewStack(cdktest.NewApp(t, nil), jsii.String("s"), nil), jsii.String("B"),
		jsii.String("arn:aws:events:us-east-1:111122223333:event-bus/central"))
	for _, c := range []struct {
		o    detector.Organization
		want string
	}{
		{detector.Organization{ID: "o-short", Bus: bus, MemberRoleName: testMemberRole}, "Props.Organization.ID"},
		{detector.Organization{ID: "O-A1B2C3D4E5", Bus: bus, MemberRoleName: testMemberRole}, "Props.Organization.ID"},
		{detector.Organization{ID: "r-a1b2", Bus: bus, MemberRoleName: testMemberRole}, "Props.Organization.ID"},
		{detector.Organization{ID: testOrgID, MemberRoleName: testMemberRole}, "Props.Organization.Bus"},
		{detector.Organization{ID: testOrgID, Bus: bus}, "Props.Organization.MemberRoleName"},
		{detector.Organization{ID: testOrgID, Bus: bus, MemberRoleName: "path/" + testMemberRole}, "Props.Organization.MemberRoleName"},
		{detector.Organization{ID: testOrgID, Bus: bus, MemberRoleName: "*"}, "Props.Organization.MemberRoleName"},
		{detector.Organization{ID: testOrgID, Bus: bus, MemberRoleName: strings.Repeat("r", 65)}, "Props.Organization.MemberRoleName"},
	} {
		p := detector.Props{Organization: &c.o}
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %s", c.o, err, c.want)
		}
	}
	ok := detector.Props{Organization: &detector.Organization{ID: testOrgID, Bus: bus, MemberRoleName: testMemberRole}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid organisation refused: %v", err)
	}
}
