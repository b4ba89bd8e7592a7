package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/constructs/organization"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/review"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// The organisation these tests deploy to: the administrator account 111122223333 (stacks in
// eu-west-1, the home Region), a member account 222233334444, and an outsider 999988887777 of
// another organisation.
const (
	testOrg      = "o-abcdefghij"
	otherOrg     = "o-zyxwvutsrq"
	adminAccount = "111122223333"
	memberAcct   = "222233334444"
	outsider     = "999988887777"
)

// orgCtx is organisation mode with every optional part on: two targets, two Regions (the first
// is the home Region), the SCP with an exempt account.
var orgCtx = map[string]any{
	"defenders:sshCidr":             "203.0.113.10/32",
	"defenders:organizationId":      testOrg,
	"defenders:organizationTargets": "ou-ab12-cdefghij, r-ab12",
	"defenders:organizationRegions": "eu-west-1,us-east-1",
	"defenders:scp":                 true,
	"defenders:scpTargets":          "ou-ab12-cdefghij",
	"defenders:scpExemptAccounts":   []any{"444455556666"},
}

// orgVariant is organisation mode with the other choices: a name prefix, a delegated
// administrator, lockdown, the app's trust and an SCP that restricts internet calls to it.
var orgVariant = map[string]any{
	"defenders:sshCidr":                   "none",
	"defenders:prefix":                    "Blue",
	"defenders:lockdown":                  true,
	"defenders:trustedEgressPrefixes":     "198.51.100.0/28",
	"defenders:sharedVpcEndpoints":        "vpce-0bbbb2222cccc3333",
	"defenders:organizationId":            testOrg,
	"defenders:organizationTargets":       []any{"ou-ab12-cdefghij"},
	"defenders:organizationRegions":       "us-east-1",
	"defenders:organizationCallAs":        "DELEGATED_ADMIN",
	"defenders:scp":                       "true",
	"defenders:scpTargets":                "r-ab12",
	"defenders:scpRestrictInternet":       true,
	"defenders:scpExemptRoleTag":          "defenders:scp-exempt",
	"defenders:alertEmail":                "secops@example.com",
	"defenders:detectorRegions":           "eu-west-1,us-east-1",
	"defenders:lockerReservedConcurrency": 2.0,
}

// single returns the one resource of tpl of type typ (the test fails on none or several).
func single(t *testing.T, tpl map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	rs := cdktest.Resources(tpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%d resources of type %s, want 1: %v", len(rs), typ, cdktest.Keys(rs))
	}
	for id, r := range rs {
		return id, r
	}
	return "", nil
}

// compact is v as compact JSON.
func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// memberTemplate returns the StackSet's TemplateBody, raw and parsed.
func memberTemplate(t *testing.T, s *synthed) (string, map[string]any) {
	t.Helper()
	_, set := single(t, s.Templates["organization"], "AWS::CloudFormation::StackSet")
	body, ok := cdktest.Props(set)["TemplateBody"].(string)
	if !ok {
		t.Fatalf("TemplateBody is %T, want the template as a string", cdktest.Props(set)["TemplateBody"])
	}
	var tpl map[string]any
	if err := json.Unmarshal([]byte(body), &tpl); err != nil {
		t.Fatalf("TemplateBody is not JSON: %v", err)
	}
	return body, tpl
}

func TestOrganizationModeBuildsTheStackSetTheCodeTheBusAndTheSCP(t *testing.T) {
	s := synth(t, orgCtx, nil)
	if got, want := strings.Join(keys(s.Templates), ","), "battleground,locker,luke,matt,organization,organization-code-eu-west-1,organization-scp"; got != want {
		t.Fatalf("stacks %s, want %s (the central detector replaces the detector stack)", got, want)
	}
	central := s.Templates["organization"]

	t.Run("the StackSet is service-managed, deploys itself to new accounts and names the targets and Regions", func(t *testing.T) {
		_, set := single(t, central, "AWS::CloudFormation::StackSet")
		p := cdktest.Props(set)
		for k, want := range map[string]string{
			"PermissionModel":      `"SERVICE_MANAGED"`,
			"CallAs":               `"SELF"`,
			"AutoDeployment":       `{"Enabled":true,"RetainStacksOnAccountRemoval":false}`,
			"Capabilities":         `["CAPABILITY_NAMED_IAM"]`,
			"OperationPreferences": `{"ConcurrencyMode":"SOFT_FAILURE_TOLERANCE","FailureTolerancePercentage":10,"MaxConcurrentPercentage":25,"RegionConcurrencyType":"PARALLEL"}`,
			"StackInstancesGroup":  `[{"DeploymentTargets":{"OrganizationalUnitIds":["ou-ab12-cdefghij","r-ab12"]},"Regions":["eu-west-1","us-east-1"]}]`,
			"StackSetName":         `"defenders-members"`,
		} {
			if got := compact(p[k]); got != want {
				t.Errorf("%s = %s, want %s", k, got, want)
			}
		}
		busID, _ := single(t, central, "AWS::Events::EventBus")
		var fnRole any
		for _, fn := range cdktest.Resources(central, "AWS::Lambda::Function") {
			fnRole = cdktest.Props(fn)["Role"]
		}
		params := map[string]string{}
		for _, kv := range p["Parameters"].([]any) {
			m := kv.(map[string]any)
			params[m["ParameterKey"].(string)] = compact(m["ParameterValue"])
		}
		want := map[string]string{
			organization.ParamEventBusArn:     compact(map[string]any{"Fn::GetAtt": []any{busID, "Arn"}}),
			organization.ParamDetectorRoleArn: compact(fnRole),
			organization.ParamCodeAccount:     `{"Ref":"AWS::AccountId"}`,
		}
		if !reflect.DeepEqual(params, want) {
			t.Errorf("parameters %v, want %v (the bus, the detector's own role, this account)", params, want)
		}
		body, _ := memberTemplate(t, s)
		if len(body) > organization.MaxTemplateBody {
			t.Errorf("TemplateBody has %d bytes, CloudFormation takes %d", len(body), organization.MaxTemplateBody)
		}
		t.Logf("member template: %d bytes of %d", len(body), organization.MaxTemplateBody)
	})

	t.Run("the member template holds the locker, the inventory role and the forwarding rule", func(t *testing.T) {
		_, m := memberTemplate(t, s)
		if got := compact(m["Conditions"]); got != `{"IsHomeRegion":{"Fn::Equals":[{"Ref":"AWS::Region"},"eu-west-1"]}}` {
			t.Errorf("Conditions = %s, want the first Region as the home Region", got)
		}
		counts := map[string]int{}
		for id, r := range m["Resources"].(map[string]any) {
			res := r.(map[string]any)
			typ, cond := res["Type"].(string), res["Condition"]
			counts[typ]++
			perAccount := strings.HasPrefix(id, "Locker") || strings.HasPrefix(id, "Inventory")
			switch {
			case perAccount && cond != "IsHomeRegion":
				t.Errorf("%s (%s) is created in every Region: a second Region's copy would collide or fight over the locks", id, typ)
			case !perAccount && cond != nil:
				t.Errorf("%s (%s) has condition %v: forwarding belongs in every Region", id, typ, cond)
			}
			if strings.HasPrefix(typ, "Custom::") || typ == "AWS::CDK::Metadata" {
				t.Errorf("%s is a %s, which a member account cannot run", id, typ)
			}
		}
		if counts["AWS::Lambda::Function"] != 1 || counts["AWS::Events::Rule"] != 4 || counts["AWS::IAM::Role"] != 3 {
			t.Errorf("resources by type %v: want the locker's function, its 3 rules and the forwarding rule, 3 roles", counts)
		}
	})

	t.Run("the inventory role may only describe, and trusts only the detector from inside the organisation", func(t *testing.T) {
		_, m := memberTemplate(t, s)
		var role map[string]any
		for id, r := range cdktest.Resources(m, "AWS::IAM::Role") {
			if strings.HasPrefix(id, "InventoryRole") {
				role = cdktest.Props(r)
			}
		}
		if role["RoleName"] != organization.InventoryRoleName || role["Path"] != nil || role["ManagedPolicyArns"] != nil {
			t.Errorf("name %v, path %v, managed policies %v: want %s under / and no managed policy", role["RoleName"], role["Path"], role["ManagedPolicyArns"], organization.InventoryRoleName)
		}
		want := `[{"PolicyDocument":{"Statement":[{"Action":["ec2:DescribeInstances","ec2:DescribeNatGateways","ec2:DescribeVpcEndpoints","ec2:DescribeRegions"],"Effect":"Allow","Resource":"*","Sid":"ReadInstanceAddresses"}],"Version":"2012-10-17"},"PolicyName":"defenders-inventory"}]`
		if got := compact(role["Policies"]); got != want {
			t.Errorf("Policies = %s, want %s", got, want)
		}
		wantTrust := `{"Statement":[{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalOrgID":"` + testOrg + `"}},"Effect":"Allow","Principal":{"AWS":{"Ref":"DetectorRoleArn"}}}],"Version":"2012-10-17"}`
		if got := compact(role["AssumeRolePolicyDocument"]); got != wantTrust {
			t.Errorf("trust = %s, want %s", got, wantTrust)
		}
	})

	t.Run("member accounts forward what the detector's own rule takes, read-only calls included", func(t *testing.T) {
		_, m := memberTemplate(t, s)
		var fwd, own map[string]any
		for id, r := range cdktest.Resources(m, "AWS::Events::Rule") {
			if strings.HasPrefix(id, "ForwardInstanceSessions") {
				fwd = cdktest.Props(r)
			}
		}
		for id, r := range cdktest.Resources(central, "AWS::Events::Rule") {
			if strings.HasPrefix(id, "DetectorCloudTrailCalls") {
				own = cdktest.Props(r)
			}
		}
		if compact(fwd["EventPattern"]) != compact(own["EventPattern"]) {
			t.Errorf("forwarded pattern %s, the detector's %s", compact(fwd["EventPattern"]), compact(own["EventPattern"]))
		}
		if fwd["State"] != "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" || fwd["Name"] != organization.ForwardRuleName {
			t.Errorf("State %v, Name %v", fwd["State"], fwd["Name"])
		}
		targets := fwd["Targets"].([]any)
		if len(targets) != 1 || compact(targets[0].(map[string]any)["Arn"]) != `{"Ref":"EventBusArn"}` || targets[0].(map[string]any)["RoleArn"] == nil {
			t.Errorf("targets %s: want the central bus, sent with a role", compact(targets))
		}
	})

	t.Run("the member lockers load the code the code stack copies, by a content-addressed key", func(t *testing.T) {
		_, m := memberTemplate(t, s)
		_, fn := single(t, m, "AWS::Lambda::Function")
		code := cdktest.Props(fn)["Code"].(map[string]any)
		code1 := s.Templates["organization-code-eu-west-1"]
		_, dep := single(t, code1, "Custom::CDKBucketDeployment")
		dp := cdktest.Props(dep)
		src := dp["SourceObjectKeys"].([]any)
		if len(src) != 1 || dp["Extract"] != false || dp["Prune"] != false || dp["DestinationBucketKeyPrefix"] != organization.CodeKeyPrefix {
			t.Fatalf("deployment %v", dp)
		}
		if want := organization.CodeKeyPrefix + path.Base(src[0].(string)); code["S3Key"] != want {
			t.Errorf("S3Key %v, want %s (what the deployment writes)", code["S3Key"], want)
		}
		_, bucket := single(t, code1, "AWS::S3::Bucket")
		name := cdktest.Substitute(t, cdktest.Props(bucket)["BucketName"], map[string]any{`{"Ref":"AWS::AccountId"}`: adminAccount})
		sub, _ := code["S3Bucket"].(map[string]any)["Fn::Sub"].(string)
		member := strings.NewReplacer("${CodeAccount}", adminAccount, "${AWS::Region}", "eu-west-1").Replace(sub)
		if name != "defenders-code-"+adminAccount+"-eu-west-1" || member != name {
			t.Errorf("the code stack's bucket is %v, the member lockers read %s (from %q)", name, member, sub)
		}
		bp := cdktest.Props(bucket)
		for k, want := range map[string]string{
			"BucketEncryption":               `{"ServerSideEncryptionConfiguration":[{"ServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}`,
			"PublicAccessBlockConfiguration": `{"BlockPublicAcls":true,"BlockPublicPolicy":true,"IgnorePublicAcls":true,"RestrictPublicBuckets":true}`,
			"VersioningConfiguration":        `{"Status":"Enabled"}`,
		} {
			if got := compact(bp[k]); got != want {
				t.Errorf("bucket %s = %s, want %s", k, got, want)
			}
		}
		if bucket["DeletionPolicy"] != "Retain" {
			t.Errorf("DeletionPolicy %v: a deleted bucket name can be taken by anyone, and member lockers would load their code", bucket["DeletionPolicy"])
		}
	})

	t.Run("the central stack is deployed after the code and before the locker", func(t *testing.T) {
		deps := dependencies(t, s)
		if !contains(deps["organization"], "organization-code-eu-west-1") || !contains(deps["locker"], "organization") {
			t.Errorf("dependencies %v", deps)
		}
	})

	t.Run("the detector takes events from the central bus", func(t *testing.T) {
		busID, _ := single(t, central, "AWS::Events::EventBus")
		fnID, _ := single(t, central, "AWS::Lambda::Function")
		found := false
		for _, r := range cdktest.Resources(central, "AWS::Events::Rule") {
			p := cdktest.Props(r)
			if compact(p["EventBusName"]) == compact(map[string]any{"Ref": busID}) &&
				strings.Contains(compact(p["Targets"]), compact(map[string]any{"Fn::GetAtt": []any{fnID, "Arn"}})) {
				found = true
			}
		}
		if !found {
			t.Error("no rule on the central bus targets the detector")
		}
	})

	t.Run("the SCP is lockpolicy's document as a string, attached to the SCP targets only", func(t *testing.T) {
		_, pol := single(t, s.Templates["organization-scp"], "AWS::Organizations::Policy")
		want, err := organization.RenderSCP(&organization.SCPProps{ExemptAccounts: []string{"444455556666"}})
		if err != nil {
			t.Fatal(err)
		}
		p := cdktest.Props(pol)
		if p["Content"] != want || p["Type"] != "SERVICE_CONTROL_POLICY" || compact(p["TargetIds"]) != `["ou-ab12-cdefghij"]` {
			t.Errorf("policy %v, want Content %s", p, want)
		}
		if tpl := s.Templates["organization-scp"]; tpl["Parameters"] != nil || tpl["Rules"] != nil {
			t.Errorf("the SCP stack checks a bootstrap version: the management account need not be bootstrapped")
		}
	})
}

// TestOrganizationVariantNamesEverythingWithThePrefix: the prefix (lowercased) reaches every
// fixed name, so two copies share an organisation; the other choices reach the StackSet and the
// member lockers.
func TestOrganizationVariantNamesEverythingWithThePrefix(t *testing.T) {
	s := synth(t, orgVariant, nil)
	if got := strings.Join(keys(s.Templates), ","); got != "Blue-battleground,Blue-locker,Blue-luke,Blue-matt,Blue-organization,Blue-organization-code-us-east-1,Blue-organization-scp" {
		t.Fatalf("stacks %s", got)
	}
	s.Templates["organization"] = s.Templates["Blue-organization"]
	_, set := single(t, s.Templates["organization"], "AWS::CloudFormation::StackSet")
	if p := cdktest.Props(set); p["CallAs"] != "DELEGATED_ADMIN" || p["StackSetName"] != "blue-defenders-members" {
		t.Errorf("CallAs %v, StackSetName %v", p["CallAs"], p["StackSetName"])
	}
	body, m := memberTemplate(t, s)
	for _, want := range []string{`"RoleName":"blue-defenders-inventory"`, `"Name":"blue-defenders-forward-instance-sessions"`,
		`"Fn::Sub":"blue-defenders-code-${CodeAccount}-${AWS::Region}"`, `"DEFENDERS_LOCKDOWN":"true"`,
		`"DEFENDERS_TRUSTED_EGRESS_PREFIXES":"198.51.100.0/28"`, `"DEFENDERS_SHARED_VPC_ENDPOINTS":"vpce-0bbbb2222cccc3333"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the member template lacks %s", want)
		}
	}
	if compact(m["Conditions"]) != `{"IsHomeRegion":{"Fn::Equals":[{"Ref":"AWS::Region"},"us-east-1"]}}` {
		t.Errorf("Conditions %s", compact(m["Conditions"]))
	}
	_, bus := single(t, s.Templates["organization"], "AWS::Events::EventBus")
	if cdktest.Props(bus)["Name"] != "blue-defenders-organization" {
		t.Errorf("bus %v", cdktest.Props(bus)["Name"])
	}
	_, pol := single(t, s.Templates["Blue-organization-scp"], "AWS::Organizations::Policy")
	content := cdktest.Props(pol)["Content"].(string)
	for _, want := range []string{"DenyInstanceCredentialsFromOtherAddresses", "198.51.100.0/28", "aws:PrincipalTag/defenders:scp-exempt", "vpce-0bbbb2222cccc3333"} {
		if !strings.Contains(content, want) {
			t.Errorf("SCP lacks %s", want)
		}
	}
}

func dependencies(t *testing.T, s *synthed) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Artifacts map[string]struct {
			Dependencies []string `json:"dependencies"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for name, a := range m.Artifacts {
		out[name] = a.Dependencies
	}
	return out
}

// intrinsics lists the compact JSON of every Ref and Fn::GetAtt in v.
func intrinsics(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 && (x["Ref"] != nil || x["Fn::GetAtt"] != nil) {
			return []string{compact(x)}
		}
		for _, e := range x {
			out = append(out, intrinsics(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, intrinsics(e)...)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestOrganizationTemplatesPassCfnLint lints every template of both organisation variants, the
// member template (the StackSet's TemplateBody, written to a file) included, in one run of
// cfn-lint: errors fail, warnings are logged.
func TestOrganizationTemplatesPassCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatalf("cfn-lint is not on PATH (pip install cfn-lint): %v", err)
	}
	dir := t.TempDir()
	var files []string
	for i, ctx := range []map[string]any{orgCtx, orgVariant} {
		s := synth(t, ctx, nil)
		tpls, _ := filepath.Glob(filepath.Join(s.Dir, "*.template.json"))
		for _, f := range tpls {
			if strings.Contains(f, "organization") {
				files = append(files, f)
			}
		}
		if s.Templates["organization"] == nil {
			s.Templates["organization"] = s.Templates["Blue-organization"]
		}
		body, _ := memberTemplate(t, s)
		f := filepath.Join(dir, fmt.Sprintf("member-%d.template.json", i))
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) != 8 {
		t.Fatalf("%d templates to lint, want 8: %v", len(files), files)
	}
	out, err := exec.Command(lint, append([]string{"--format", "parseable"}, files...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode()&2 == 0: // bit 2 is "errors"; 4 warnings, 8 informational
	default:
		t.Errorf("cfn-lint found errors (%v):\n%s", err, out)
	}
	if msg := strings.TrimSpace(string(out)); msg != "" {
		t.Logf("cfn-lint warnings:\n%s", msg)
	}
}

// TestOrganizationPoliciesWithTheIAMEvaluator evaluates the synthesized policies that let
// accounts reach each other with the independent IAM evaluator: the inventory role's trust and
// permissions, the central bus's policy with the member forwarding role's, the code bucket's.
func TestOrganizationPoliciesWithTheIAMEvaluator(t *testing.T) {
	s := synth(t, orgCtx, nil)
	_, member := memberTemplate(t, s)
	const (
		detectorRole = "arn:aws:iam::" + adminAccount + ":role/organization-DetectorRoleF970C038-ABCDEF"
		detector     = "arn:aws:sts::" + adminAccount + ":assumed-role/organization-DetectorRoleF970C038-ABCDEF/detector"
		busArn       = "arn:aws:events:eu-west-1:" + adminAccount + ":event-bus/defenders-organization"
		inventory    = "arn:aws:iam::" + memberAcct + ":role/defenders-inventory"
		forwarder    = "arn:aws:sts::" + memberAcct + ":assumed-role/StackSet-defenders-members-ForwardRole-XYZ/events"
		execRole     = "arn:aws:sts::" + memberAcct + ":assumed-role/stacksets-exec-0123456789abcdef/cloudformation"
		codeObject   = "arn:aws:s3:::defenders-code-" + adminAccount + "-eu-west-1/locker/0123.zip"
	)
	memberValues := map[string]any{
		`{"Ref":"DetectorRoleArn"}`: detectorRole,
		`{"Ref":"EventBusArn"}`:     busArn,
	}
	policy := func(name string, doc any) *iameval.Policy {
		return &iameval.Policy{Name: name, Document: json.RawMessage(compact(doc))}
	}
	var trust, inventoryPolicy, forwardPolicy *iameval.Policy
	for id, r := range cdktest.Resources(member, "AWS::IAM::Role") {
		if strings.HasPrefix(id, "InventoryRole") {
			p := cdktest.Props(r)
			trust = policy("inventory trust", cdktest.Substitute(t, p["AssumeRolePolicyDocument"], memberValues))
			inventoryPolicy = policy("inventory", p["Policies"].([]any)[0].(map[string]any)["PolicyDocument"])
		}
	}
	for id, r := range cdktest.Resources(member, "AWS::IAM::Policy") {
		if strings.HasPrefix(id, "ForwardRole") {
			forwardPolicy = policy("forward", cdktest.Substitute(t, cdktest.Props(r)["PolicyDocument"], memberValues))
		}
	}
	if trust == nil || inventoryPolicy == nil || forwardPolicy == nil {
		t.Fatalf("the member template lacks the inventory role (%v, %v) or the forwarding role's policy (%v)", trust, inventoryPolicy, forwardPolicy)
	}
	busID, _ := single(t, s.Templates["organization"], "AWS::Events::EventBus")
	_, bp := single(t, s.Templates["organization"], "AWS::Events::EventBusPolicy")
	stmt := cdktest.Substitute(t, cdktest.Props(bp)["Statement"], map[string]any{compact(map[string]any{"Fn::GetAtt": []any{busID, "Arn"}}): busArn})
	busPolicy := policy("bus", map[string]any{"Version": "2012-10-17", "Statement": []any{stmt}})
	code := s.Templates["organization-code-eu-west-1"]
	bucketID, _ := single(t, code, "AWS::S3::Bucket")
	_, bucketPol := single(t, code, "AWS::S3::BucketPolicy")
	bucketPolicy := policy("code bucket", cdktest.Substitute(t, cdktest.Props(bucketPol)["PolicyDocument"], map[string]any{
		compact(map[string]any{"Fn::GetAtt": []any{bucketID, "Arn"}}): "arn:aws:s3:::defenders-code-" + adminAccount + "-eu-west-1",
	}))
	// The detector's own identity policy (its organisation-mode grant), every other reference
	// in it given a stand-in value; the other callers are administrators of their accounts.
	var detectorPolicy *iameval.Policy
	for id, r := range cdktest.Resources(s.Templates["organization"], "AWS::IAM::Policy") {
		if strings.HasPrefix(id, "DetectorRole") {
			doc := cdktest.Props(r)["PolicyDocument"]
			values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws"}
			for _, in := range intrinsics(doc) {
				if _, ok := values[in]; !ok {
					values[in] = "arn:aws:sqs:eu-west-1:" + adminAccount + ":stand-in"
				}
			}
			detectorPolicy = policy("detector", cdktest.Substitute(t, doc, values))
		}
	}
	if detectorPolicy == nil {
		t.Fatal("no policy of the detector's role in the central stack")
	}
	admin := policy("admin", map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Effect": "Allow", "Action": "*", "Resource": "*"}}})
	inOrg := func(org string, extra ...string) map[string]any {
		c := map[string]any{}
		if org != "" {
			c["aws:PrincipalOrgID"] = org
		}
		for i := 0; i+1 < len(extra); i += 2 {
			c[extra[i]] = extra[i+1]
		}
		return c
	}
	cases := []struct {
		name, principal, action, resource, account string
		identity, resource_                        *iameval.Policy
		ctx                                        map[string]any
		want                                       string
	}{
		{"the detector assumes the inventory role from inside the organisation", detector, "sts:AssumeRole", inventory, memberAcct, detectorPolicy, trust, inOrg(testOrg, "aws:ResourceOrgID", testOrg), iameval.Allowed},
		{"the same role ARN from another organisation is refused", detector, "sts:AssumeRole", inventory, memberAcct, detectorPolicy, trust, inOrg(otherOrg, "aws:ResourceOrgID", testOrg), iameval.ImplicitlyDenied},
		{"the same role ARN outside any organisation is refused", detector, "sts:AssumeRole", inventory, memberAcct, detectorPolicy, trust, inOrg("", "aws:ResourceOrgID", testOrg), iameval.ImplicitlyDenied},
		{"the detector may not assume a role of that name outside the organisation", detector, "sts:AssumeRole", "arn:aws:iam::" + outsider + ":role/defenders-inventory", outsider,
			detectorPolicy, policy("an outsider's look-alike trusting the detector", map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": map[string]any{"AWS": detectorRole}}}}),
			inOrg(testOrg, "aws:ResourceOrgID", otherOrg), iameval.ImplicitlyDenied},
		{"another role of the administrator account is refused", "arn:aws:sts::" + adminAccount + ":assumed-role/Admin/alice", "sts:AssumeRole", inventory, memberAcct, admin, trust, inOrg(testOrg), iameval.ImplicitlyDenied},
		{"an administrator of the member account is refused", "arn:aws:sts::" + memberAcct + ":assumed-role/Admin/bob", "sts:AssumeRole", inventory, memberAcct, admin, trust, inOrg(testOrg), iameval.ImplicitlyDenied},
		{"an outsider is refused", "arn:aws:sts::" + outsider + ":assumed-role/Admin/mallory", "sts:AssumeRole", inventory, memberAcct, admin, trust, inOrg(otherOrg), iameval.ImplicitlyDenied},

		{"the inventory role describes instances", "arn:aws:sts::" + memberAcct + ":assumed-role/defenders-inventory/detector", "ec2:DescribeInstances", "*", memberAcct, inventoryPolicy, nil, nil, iameval.Allowed},
		{"the inventory role describes Regions", "arn:aws:sts::" + memberAcct + ":assumed-role/defenders-inventory/detector", "ec2:DescribeRegions", "*", memberAcct, inventoryPolicy, nil, nil, iameval.Allowed},
		{"the inventory role cannot terminate", "arn:aws:sts::" + memberAcct + ":assumed-role/defenders-inventory/detector", "ec2:TerminateInstances", "arn:aws:ec2:eu-west-1:" + memberAcct + ":instance/i-0123456789abcdef0", memberAcct, inventoryPolicy, nil, nil, iameval.ImplicitlyDenied},
		{"the inventory role cannot read IAM", "arn:aws:sts::" + memberAcct + ":assumed-role/defenders-inventory/detector", "iam:GetRolePolicy", "arn:aws:iam::" + memberAcct + ":role/defenders/web", memberAcct, inventoryPolicy, nil, nil, iameval.ImplicitlyDenied},
		{"the inventory role cannot read S3", "arn:aws:sts::" + memberAcct + ":assumed-role/defenders-inventory/detector", "s3:GetObject", "arn:aws:s3:::secrets/x", memberAcct, inventoryPolicy, nil, nil, iameval.ImplicitlyDenied},

		{"a member account's forwarding role puts events on the bus", forwarder, "events:PutEvents", busArn, adminAccount, forwardPolicy, busPolicy, inOrg(testOrg), iameval.Allowed},
		{"a principal of another organisation cannot put events", "arn:aws:sts::" + outsider + ":assumed-role/Admin/mallory", "events:PutEvents", busArn, adminAccount, admin, busPolicy, inOrg(otherOrg), iameval.ImplicitlyDenied},
		{"a principal outside any organisation cannot put events", "arn:aws:sts::" + outsider + ":assumed-role/Admin/mallory", "events:PutEvents", busArn, adminAccount, admin, busPolicy, inOrg(""), iameval.ImplicitlyDenied},
		{"a member account cannot add rules to the bus", "arn:aws:sts::" + memberAcct + ":assumed-role/Admin/bob", "events:PutRule", "arn:aws:events:eu-west-1:" + adminAccount + ":rule/defenders-organization/steal", adminAccount, admin, busPolicy, inOrg(testOrg), iameval.ImplicitlyDenied},
		{"the forwarding role can put events on no other bus", forwarder, "events:PutEvents", "arn:aws:events:eu-west-1:" + outsider + ":event-bus/exfil", outsider, forwardPolicy, nil, inOrg(testOrg), iameval.ImplicitlyDenied},

		{"a member account's StackSet execution role reads the code", execRole, "s3:GetObject", codeObject, adminAccount, admin, bucketPolicy, inOrg(testOrg, "aws:SecureTransport", "true"), iameval.Allowed},
		{"a principal of another organisation cannot read the code", "arn:aws:sts::" + outsider + ":assumed-role/Admin/mallory", "s3:GetObject", codeObject, adminAccount, admin, bucketPolicy, inOrg(otherOrg, "aws:SecureTransport", "true"), iameval.ImplicitlyDenied},
		{"nobody in the organisation may write the code", execRole, "s3:PutObject", codeObject, adminAccount, admin, bucketPolicy, inOrg(testOrg, "aws:SecureTransport", "true"), iameval.ImplicitlyDenied},
		{"only the code prefix is readable", execRole, "s3:GetObject", "arn:aws:s3:::defenders-code-" + adminAccount + "-eu-west-1/other/x", adminAccount, admin, bucketPolicy, inOrg(testOrg, "aws:SecureTransport", "true"), iameval.ImplicitlyDenied},
		{"nothing over plain HTTP", execRole, "s3:GetObject", codeObject, adminAccount, admin, bucketPolicy, inOrg(testOrg, "aws:SecureTransport", "false"), iameval.ExplicitlyDenied},
	}
	reqs := make([]iameval.Request, len(cases))
	for i, c := range cases {
		ctx := c.ctx
		if ctx == nil {
			ctx = map[string]any{}
		}
		reqs[i] = iameval.Request{Name: c.name, Principal: c.principal, Action: c.action, Resource: c.resource, ResourceAccount: c.account,
			Context: ctx, IdentityPolicies: []iameval.Policy{*c.identity}, ResourcePolicy: c.resource_}
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := cases[i].want
		t.Run(r.Name, func(t *testing.T) {
			if r.Decision != want {
				t.Errorf("%s, want %s", r.Decision, want)
			}
		})
	}
}

// TestOrganizationContextMistakesAreErrorsThatNameTheKey: every bad or hostile value of an
// organisation key stops synth with an error that names the key.
func TestOrganizationContextMistakesAreErrorsThatNameTheKey(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		ctx := map[string]any{
			"defenders:sshCidr":             "none",
			"defenders:organizationId":      testOrg,
			"defenders:organizationTargets": "ou-ab12-cdefghij",
			"defenders:organizationRegions": "eu-west-1",
		}
		for k, v := range extra {
			if v == nil {
				delete(ctx, k)
			} else {
				ctx[k] = v
			}
		}
		return ctx
	}
	manyAccounts := make([]any, 400)
	for i := range manyAccounts {
		manyAccounts[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	manyOUs := make([]string, organization.MaxDeploymentTargets+1)
	for i := range manyOUs {
		manyOUs[i] = fmt.Sprintf("ou-ab12-%08d", i)
	}
	cases := []struct {
		name   string
		ctx    map[string]any
		wantIn []string
	}{
		{"an organization id of the wrong shape", base(map[string]any{"defenders:organizationId": "o-123"}), []string{"defenders:organizationId", "o-123"}},
		{"an organization id with a quote in it", base(map[string]any{"defenders:organizationId": `o-abcdefghij"}`}), []string{"defenders:organizationId"}},
		{"an organization id given as a number", base(map[string]any{"defenders:organizationId": 42.0}), []string{"defenders:organizationId"}},
		{"an account where an OU belongs", base(map[string]any{"defenders:organizationTargets": "111122223333"}), []string{"defenders:organizationTargets", "111122223333"}},
		{"an OU id of the wrong shape", base(map[string]any{"defenders:organizationTargets": "ou-ab12,r-ab12"}), []string{"defenders:organizationTargets", "ou-ab12"}},
		{"an OU listed twice", base(map[string]any{"defenders:organizationTargets": "ou-ab12-cdefghij,ou-ab12-cdefghij"}), []string{"defenders:organizationTargets", "twice"}},
		{"more OUs than one StackSet operation takes", base(map[string]any{"defenders:organizationTargets": strings.Join(manyOUs, ",")}), []string{"defenders:organizationTargets", "parent OU"}},
		{"no target", base(map[string]any{"defenders:organizationTargets": nil}), []string{"defenders:organizationTargets"}},
		{"a Region that is not one", base(map[string]any{"defenders:organizationRegions": "eu-west-1,mars"}), []string{"defenders:organizationRegions", "mars"}},
		{"a Region with a command in it", base(map[string]any{"defenders:organizationRegions": "eu-west-1;rm -rf /"}), []string{"defenders:organizationRegions"}},
		{"an Availability Zone for a Region", base(map[string]any{"defenders:organizationRegions": "eu-west-1a"}), []string{"defenders:organizationRegions"}},
		{"no Region", base(map[string]any{"defenders:organizationRegions": nil}), []string{"defenders:organizationRegions"}},
		{"a CallAs that is neither", base(map[string]any{"defenders:organizationCallAs": "ROOT"}), []string{"defenders:organizationCallAs", "DELEGATED_ADMIN"}},
		{"organisation mode without the detector", base(map[string]any{"defenders:detector": false}), []string{"defenders:detector", "defenders:organizationId"}},
		{"an organisation key without organisation mode", map[string]any{"defenders:sshCidr": "none", "defenders:organizationRegions": "eu-west-1"}, []string{"defenders:organizationRegions", "defenders:organizationId"}},
		{"an SCP key without the SCP", base(map[string]any{"defenders:scpTargets": "r-ab12"}), []string{"defenders:scpTargets", "defenders:scp"}},
		{"the SCP without targets", base(map[string]any{"defenders:scp": true}), []string{"defenders:scpTargets"}},
		{"an SCP target of the wrong shape", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "o-abcdefghij"}), []string{"defenders:scpTargets"}},
		{"an SCP switch that is neither true nor false", base(map[string]any{"defenders:scp": "yes"}), []string{"defenders:scp"}},
		{"an exempt account that is not an account", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "r-ab12", "defenders:scpExemptAccounts": "12345"}), []string{"defenders:scpExemptAccounts", "12345"}},
		{"more exempt accounts than an SCP holds", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "r-ab12", "defenders:scpExemptAccounts": manyAccounts}), []string{"defenders:scpExemptAccounts", "5120"}},
		{"an exempt role tag in AWS's namespace", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "r-ab12", "defenders:scpExemptRoleTag": "aws:exempt"}), []string{"defenders:scpExemptRoleTag"}},
		{"an exempt role tag with a quote", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "r-ab12", "defenders:scpExemptRoleTag": `x"}`}), []string{"defenders:scpExemptRoleTag"}},
		{"restricting the internet without trusted egress", base(map[string]any{"defenders:scp": true, "defenders:scpTargets": "r-ab12", "defenders:scpRestrictInternet": true}), []string{"defenders:scpRestrictInternet", "defenders:trustedEgressPrefixes"}},
		{"a typo in an organisation key", base(map[string]any{"defenders:organizationid": testOrg}), []string{"defenders:organizationid", "did you mean defenders:organizationId?"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := synthErr(t, c.ctx)
			for _, w := range c.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestOrganizationModePassesTheGuardAndCdkNag: the guard finds nothing new in organisation
// mode, in the app's stacks or the member template; cdk-nag reports no error there, and every
// suppression (the member template's too) gives a reason.
func TestOrganizationModePassesTheGuardAndCdkNag(t *testing.T) {
	s := synth(t, orgCtx, nil)
	res, err := guard.Check(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res.Print(&out)
	if len(res.Findings) > 0 || len(res.Acknowledged) != 1 {
		t.Errorf("guard (want Matt's acknowledgement alone):\n%s", out.String())
	}
	body, member := memberTemplate(t, s)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "member.template.json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := review.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep := review.Analyze(a); len(rep.Findings)+len(rep.Acknowledged) > 0 {
		t.Errorf("review of the member template: %+v %+v", rep.Findings, rep.Acknowledged)
	}
	for _, m := range messages(t, s) {
		if m.Level == "error" {
			t.Errorf("%s: %s", m.Path, m.Data)
		}
	}
	reasons := map[string]int{}
	for name, tpl := range map[string]map[string]any{"member": member, "organization": s.Templates["organization"], "code": s.Templates["organization-code-eu-west-1"]} {
		for id, r := range tpl["Resources"].(map[string]any) {
			meta, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := meta["cdk_nag"].(map[string]any)
			rules, _ := nag["rules_to_suppress"].([]any)
			for _, rule := range rules {
				reasons[name]++
				if reason, _ := rule.(map[string]any)["reason"].(string); len(reason) < 20 {
					t.Errorf("%s/%s: suppression %v has no real reason", name, id, rule)
				}
			}
		}
	}
	for _, name := range []string{"member", "organization", "code"} {
		if reasons[name] == 0 {
			t.Errorf("no cdk-nag suppression in the %s template: is cdk-nag running on it?", name)
		}
	}
}

// TestWithoutOrganizationModeNothingChanges: the single-account app builds the stacks it always
// built (their templates are the goldens of TestSnapshotsOfEveryStackMatchTheGoldenTemplates).
func TestWithoutOrganizationModeNothingChanges(t *testing.T) {
	s := synth(t, pinned, nil)
	names := keys(s.Templates)
	sort.Strings(names)
	if got := strings.Join(names, ","); got != "battleground,detector,locker,luke,matt" {
		t.Errorf("stacks %s", got)
	}
	if s.App.Organization != nil || s.App.Config.Organization.Enabled() {
		t.Error("organisation mode is on without defenders:organizationId")
	}
}
