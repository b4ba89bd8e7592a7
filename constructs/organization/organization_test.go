package organization_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/organization"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

const orgID = "o-abcdefghij"

func TestIdentifiersAreValidated(t *testing.T) {
	cases := []struct {
		name  string
		check func(string) error
		good  []string
		bad   []string
	}{
		{"organization ids", organization.CheckOrganizationID,
			[]string{"o-abcdefghij", "o-0123456789abcdefghij0123456789ab"},
			[]string{"", "o-short", "O-ABCDEFGHIJ", "o-abcdefghij\n", "o-abcdefghij\"}", "r-ab12", "o-" + strings.Repeat("a", 33)}},
		{"StackSet deployment targets (roots and OUs)", organization.CheckDeploymentTarget,
			[]string{"r-ab12", "ou-ab12-cdefghij", "ou-0123-0123456789abcdef"},
			[]string{"", "111122223333", "ou-ab12", "ou-AB12-cdefghij", "r-a", "ou-ab12-cdefghij,r-ab12", "o-abcdefghij"}},
		{"policy targets (roots, OUs and accounts)", organization.CheckPolicyTarget,
			[]string{"r-ab12", "ou-ab12-cdefghij", "111122223333"},
			[]string{"", "11112222333", "1111222233334", "arn:aws:organizations::111122223333:ou/o-x/ou-ab12-cdefghij"}},
		{"Region names", organization.CheckRegion,
			[]string{"eu-west-1", "us-east-1", "ap-southeast-5", "us-gov-west-1", "eusc-de-east-1"},
			[]string{"", "mars", "eu-west", "EU-WEST-1", "eu-west-1a", "eu-west-1;rm -rf /", "eu_west_1"}},
		{"name prefixes", organization.CheckNamePrefix,
			[]string{"", "blue-", "team-7-"},
			[]string{"blue", "Blue-", "-", "7team-", "blue--", strings.Repeat("a", 21) + "-"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, s := range c.good {
				if err := c.check(s); err != nil {
					t.Errorf("%q refused: %v", s, err)
				}
			}
			for _, s := range c.bad {
				if err := c.check(s); err == nil {
					t.Errorf("%q accepted", s)
				}
			}
		})
	}
}

func validMember() *organization.MemberProps {
	return &organization.MemberProps{OrganizationID: orgID, HomeRegion: "eu-west-1", CodeKey: "locker/0123abcd.zip"}
}

// TestTheMemberTemplateIsSynthesizedApart: the member stack is synthesized in an app of its
// own, outside the caller's cloud assembly and without the CLI's path metadata, and leaves no
// directory behind. The CDK CLI's environment (CDK_OUTDIR: the caller's cloud assembly;
// CDK_CONTEXT_JSON: its context, path metadata on) reaches the jsii kernel only when it starts,
// so the synth runs in a child process started with that environment.
func TestTheMemberTemplateIsSynthesizedApart(t *testing.T) {
	if out := os.Getenv("DEFENDERS_TEST_MEMBER_OUT"); out != "" {
		var m *organization.MemberTemplate
		var err error
		cdktest.NoPanic(t, func() { m, err = organization.SynthMemberTemplate(validMember()) })
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(m)
		if err := os.WriteFile(out, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	outdir, result := t.TempDir(), filepath.Join(t.TempDir(), "member.json")
	leftovers := func() []string {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "defenders-member-*"))
		return dirs
	}
	before := len(leftovers())
	cmd := exec.Command(os.Args[0], "-test.run=^TestTheMemberTemplateIsSynthesizedApart$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DEFENDERS_TEST_MEMBER_OUT="+result, "CDK_OUTDIR="+outdir,
		`CDK_CONTEXT_JSON={"aws:cdk:enable-path-metadata":true,"aws:cdk:enable-asset-metadata":true}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child synth: %v\n%s", err, out)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	var m organization.MemberTemplate
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Parameters, ","); got != "CodeAccount,DetectorRoleArn,EventBusArn" {
		t.Errorf("parameters %s", got)
	}
	if left, _ := os.ReadDir(outdir); len(left) != 0 {
		t.Errorf("the caller's cloud assembly (CDK_OUTDIR) holds %d entries after the synth, want none (%v)", len(left), left[0].Name())
	}
	if n := len(leftovers()); n > before {
		t.Errorf("the member app left its directory behind: %v", leftovers())
	}
	if strings.Contains(m.Body, "aws:cdk:path") {
		t.Error("the member template carries construct paths (the CLI's context won over the member app's)")
	}
	var tpl map[string]any
	if err := json.Unmarshal([]byte(m.Body), &tpl); err != nil {
		t.Fatal(err)
	}
	if _, ok := tpl["Rules"]; ok {
		t.Error("the member template checks a bootstrap version: member accounts are not bootstrapped")
	}
	for id, r := range tpl["Resources"].(map[string]any) {
		if typ := r.(map[string]any)["Type"]; typ == "AWS::CDK::Metadata" || strings.HasPrefix(typ.(string), "Custom::") {
			t.Errorf("%s is a %s", id, typ)
		}
	}
	for _, w := range m.Warnings {
		t.Errorf("warning: %s", w)
	}
}

func TestMemberPropsAreValidated(t *testing.T) {
	cases := []struct {
		field  string
		change func(p *organization.MemberProps)
	}{
		{"OrganizationID", func(p *organization.MemberProps) { p.OrganizationID = "o-bad" }},
		{"HomeRegion", func(p *organization.MemberProps) { p.HomeRegion = "" }},
		{"NamePrefix", func(p *organization.MemberProps) { p.NamePrefix = "Blue" }},
		{"CodeKey", func(p *organization.MemberProps) { p.CodeKey = "" }},
		{"CodeKey", func(p *organization.MemberProps) { p.CodeKey = "other/x.zip" }},
		{"CodeKey", func(p *organization.MemberProps) { p.CodeKey = "locker/${AWS::AccountId}.zip" }},
	}
	for _, c := range cases {
		p := validMember()
		c.change(p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "MemberProps."+c.field) {
			t.Errorf("%+v: err = %v, want one naming %s", p, err, c.field)
		}
	}
}

func TestStackSetPropsAreValidated(t *testing.T) {
	tpl := &organization.MemberTemplate{Body: `{"Resources":{}}`, Parameters: []string{"A"}}
	valid := func() organization.StackSetProps {
		return organization.StackSetProps{Template: tpl, Parameters: map[string]*string{"A": jsii.String("a")},
			Targets: []string{"ou-ab12-cdefghij"}, Regions: []string{"eu-west-1"}}
	}
	many := make([]string, organization.MaxDeploymentTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf("ou-ab12-%08d", i)
	}
	cases := []struct {
		name, wantIn string
		change       func(p *organization.StackSetProps)
	}{
		{"no template", "Template", func(p *organization.StackSetProps) { p.Template = nil }},
		{"a template above 51,200 bytes", "TemplateURL", func(p *organization.StackSetProps) {
			p.Template = &organization.MemberTemplate{Body: `{"Description":"` + strings.Repeat("x", organization.MaxTemplateBody) + `"}`}
			p.Parameters = nil
		}},
		{"no target", "Targets", func(p *organization.StackSetProps) { p.Targets = nil }},
		{"more targets than one operation takes", "parent OU", func(p *organization.StackSetProps) { p.Targets = many }},
		{"an account where an OU belongs", "Targets[0]", func(p *organization.StackSetProps) { p.Targets = []string{"111122223333"} }},
		{"no Region", "Regions", func(p *organization.StackSetProps) { p.Regions = nil }},
		{"a Region twice", "listed twice", func(p *organization.StackSetProps) { p.Regions = []string{"eu-west-1", "eu-west-1"} }},
		{"an unknown CallAs", "CallAs", func(p *organization.StackSetProps) { p.CallAs = "ADMIN" }},
		{"a parameter without a value", "parameter A has no value", func(p *organization.StackSetProps) { p.Parameters = nil }},
		{"a value for no parameter", "no parameter B", func(p *organization.StackSetProps) { p.Parameters["B"] = jsii.String("b") }},
	}
	if p := valid(); p.Validate() != nil {
		t.Fatalf("valid props refused: %v", p.Validate())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := valid()
			c.change(&p)
			if err := p.Validate(); err == nil || !strings.Contains(err.Error(), c.wantIn) {
				t.Errorf("err = %v, want one containing %q", err, c.wantIn)
			}
		})
	}
}

// TestTheSCPIsTheRenderedDocumentAsAString: Content is lockpolicy.SCP's JSON, byte for byte (a
// string, so that what Organizations counts is what was sized); too many exempt accounts are an
// error that says how many fit.
func TestTheSCPIsTheRenderedDocumentAsAString(t *testing.T) {
	props := &organization.SCPProps{Targets: []string{"ou-ab12-cdefghij", "111122223333"}, ExemptAccounts: []string{"444455556666"}}
	want, err := lockpolicy.SCP(lockpolicy.SCPOptions{ExemptAccounts: props.ExemptAccounts})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := want.JSON()
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("scp"), nil)
		if _, err := organization.NewSCP(st, "SCP", props); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	pols := cdktest.Resources(asm.Templates["scp"], "AWS::Organizations::Policy")
	for _, p := range pols {
		if got := cdktest.Props(p)["Content"]; got != string(wantJSON) {
			t.Errorf("Content = %v, want the string %s", got, wantJSON)
		}
		if cdktest.Props(p)["Type"] != "SERVICE_CONTROL_POLICY" {
			t.Errorf("Type = %v", cdktest.Props(p)["Type"])
		}
	}
	if len(pols) != 1 {
		t.Fatalf("%d policies", len(pols))
	}

	many := make([]string, 400)
	for i := range many {
		many[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	_, err = organization.RenderSCP(&organization.SCPProps{Targets: []string{"r-ab12"}, ExemptAccounts: many})
	if !errors.Is(err, lockpolicy.ErrSCPTooLarge) || !strings.Contains(err.Error(), "exempt accounts fit") {
		t.Errorf("400 exempt accounts: err = %v", err)
	}
	for _, bad := range [][]string{nil, {"o-abcdefghij"}, {"r-ab12", "r-ab12"}} {
		app := cdktest.NewApp(t, nil)
		cdktest.NoPanic(t, func() {
			if _, err := organization.NewSCP(awscdk.NewStack(app, jsii.String("s"), nil), "SCP", &organization.SCPProps{Targets: bad}); err == nil ||
				!strings.Contains(err.Error(), "Targets") {
				t.Errorf("targets %q: err = %v", bad, err)
			}
		})
	}
}

func TestTheCodeBucketNeedsItsRegion(t *testing.T) {
	code := t.TempDir()
	if err := os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, region, prefix, wantIn string
	}{
		{"an environment-agnostic stack", "", "", "must name its Region"},
		{"a name longer than S3 allows", "ap-southeast-12", "abcdefghijklmnopqrst-", "S3 allows 63"},
		{"a bad organization id", "eu-west-1", "", "OrganizationID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := cdktest.NewApp(t, nil)
			cdktest.NoPanic(t, func() {
				var env *awscdk.Environment
				if c.region != "" {
					env = &awscdk.Environment{Region: jsii.String(c.region)}
				}
				st := awscdk.NewStack(app, jsii.String("code"), &awscdk.StackProps{Env: env})
				id := orgID
				if c.wantIn == "OrganizationID" {
					id = "o-x"
				}
				_, err := organization.NewCodeBucket(st, "Code", &organization.CodeBucketProps{
					OrganizationID: id, NamePrefix: c.prefix, Code: awslambda.Code_FromAsset(jsii.String(code), nil)})
				if err == nil || !strings.Contains(err.Error(), c.wantIn) {
					t.Errorf("err = %v, want one containing %q", err, c.wantIn)
				}
			})
		})
	}
}
