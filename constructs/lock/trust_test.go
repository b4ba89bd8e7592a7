package lock_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// The app's trust in the scenarios: a central egress range and an endpoint of a shared-services
// VPC.
const (
	egressPrefix   = "192.0.2.0/24"
	egressHost     = "192.0.2.17"
	sharedVpce     = "vpce-0123456789abcdef0"
	otherVpce      = "vpce-0fedcba987654321f"
	sharedServices = "vpc-0aaaabbbbccccdddd"
)

var appTrust = lock.Trust{EgressPrefixes: []string{egressPrefix}, SharedVPCEndpoints: []string{sharedVpce}}

// TestTrustIsValidatedWhereItIsGiven checks that a bad trusted value fails the call that takes
// it (Everything, New, ForInstanceWithTrust), with an error that names the value, and that the
// call creates nothing.
func TestTrustIsValidatedWhereItIsGiven(t *testing.T) {
	bad := []struct {
		name  string
		trust lock.Trust
		want  []string
	}{
		{"a private egress prefix", lock.Trust{EgressPrefixes: []string{"10.0.0.0/8"}}, []string{"10.0.0.0/8"}},
		{"the whole internet as an egress prefix", lock.Trust{EgressPrefixes: []string{"0.0.0.0/0"}}, []string{"0.0.0.0/0"}},
		{"an egress prefix with host bits set", lock.Trust{EgressPrefixes: []string{"198.51.100.7/24"}}, []string{"198.51.100.7/24"}},
		{"a VPC id given as a shared endpoint", lock.Trust{SharedVPCEndpoints: []string{"vpc-0123456789abcdef0"}}, []string{"vpc-0123456789abcdef0"}},
		{"two bad values at once", lock.Trust{EgressPrefixes: []string{"192.168.0.0/16"}, SharedVPCEndpoints: []string{"vpce-XYZ"}},
			[]string{"192.168.0.0/16", "vpce-XYZ"}},
	}
	w := newWorld(t)
	cdktest.NoPanic(t, func() {
		inst := w.instance(w.stack, "Web", awsec2.SubnetType_PUBLIC, nil)
		calls := []struct {
			name, field string
			call        func(id string, tr lock.Trust) error
		}{
			{"lock.Everything", "Options.Trust", func(_ string, tr lock.Trust) error {
				return lock.Everything(w.app, &lock.Options{Trust: tr})
			}},
			{"lock.New", "Props.Trust", func(id string, tr lock.Trust) error {
				_, err := lock.New(w.stack, id, &lock.Props{Role: inst.Role(), VPCs: []string{*w.vpc.VpcId()}, Trust: tr})
				return err
			}},
			{"lock.ForInstanceWithTrust", "trust", func(id string, tr lock.Trust) error {
				_, err := lock.ForInstanceWithTrust(w.stack, id, inst, inst.Role(), w.vpc, tr)
				return err
			}},
		}
		for _, b := range bad {
			for _, c := range calls {
				t.Run(c.name+" refuses "+b.name, func(t *testing.T) {
					id := "Lock" + sanitizeID(b.name)
					err := c.call(id, b.trust)
					if err == nil {
						t.Fatal("accepted")
					}
					for _, s := range append(b.want, c.field) {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("the error lacks %q: %v", s, err)
						}
					}
					if w.stack.Node().TryFindChild(jsii.String(id)) != nil {
						t.Errorf("a construct %s was created", id)
					}
				})
			}
		}
		t.Run("every entry point accepts a valid trust", func(t *testing.T) {
			for _, c := range calls {
				if err := c.call("Good"+sanitizeID(c.name), appTrust); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			}
		})
	})
}

func sanitizeID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// TestTrustIsRenderedIntoEveryLock checks that the app's trust is in every lock that
// Everything (each mode), ForInstanceWithTrust and New render, that the lock's policy records it
// for the review, and that the locks mean it.
func TestTrustIsRenderedIntoEveryLock(t *testing.T) {
	type row struct {
		name, role string
		ownIP      string // the public address the instance's calls leave from
	}
	rows := []row{
		{"lock.Everything in public IP mode", "WebInstanceRole", webIP},
		{"lock.Everything in NAT egress mode", "WorkerInstanceRole", natIP},
		{"lock.Everything in VPC endpoints only mode", "VaultInstanceRole", ""},
		{"lock.ForInstanceWithTrust", "LukeInstanceRole", sharedAIP},
		{"lock.New", "ByHandInstanceRole", sharedBIP},
	}
	w := newWorld(t)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		if err := lock.Everything(w.stack, &lock.Options{Trust: appTrust}); err != nil {
			t.Fatal(err)
		}
		w.instance(w.stack, "Web", awsec2.SubnetType_PUBLIC, nil)
		worker := w.instance(w.stack, "Worker", awsec2.SubnetType_PRIVATE_WITH_EGRESS, nil)
		vault := w.instance(w.stack, "Vault", awsec2.SubnetType_PRIVATE_ISOLATED, nil)
		for c, m := range map[awsec2.Instance]lock.Mode{worker: lock.NATEgress, vault: lock.VPCEndpointsOnly} {
			if err := lock.Everything(c, &lock.Options{Mode: m, Trust: appTrust}); err != nil {
				t.Fatal(err)
			}
		}
		manual := awscdk.NewStack(w.app, jsii.String("manual"), nil)
		luke := w.instance(manual, "Luke", awsec2.SubnetType_PUBLIC, nil)
		if _, err := lock.ForInstanceWithTrust(manual, "LukeLock", luke, luke.Role(), w.vpc, appTrust); err != nil {
			t.Fatal(err)
		}
		role := w.instance(manual, "ByHand", awsec2.SubnetType_PUBLIC, nil).Role()
		if _, err := lock.New(manual, "ByHandLock", &lock.Props{Role: role, SourceIPs: []string{sharedBIP}, VPCs: []string{vpcID}, Trust: appTrust}); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, w.app)
	})
	if errs := asm.Errors(""); len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	// Every lock of both templates, with its tokens evaluated.
	tpl := map[string]any{"Resources": map[string]any{}}
	values := map[string]any{}
	for _, name := range []string{"work", "manual"} {
		src := asm.Templates[name]
		for id, r := range src["Resources"].(map[string]any) {
			tpl["Resources"].(map[string]any)[id] = r
		}
		for id := range cdktest.Resources(src, "AWS::EC2::Instance") {
			values[`{"Fn::GetAtt":["`+id+`","VpcId"]}`] = vpcID
		}
		outs, _ := src["Outputs"].(map[string]any)
		for _, out := range outs { // the manual stack imports the VPC id from work
			if exp, ok := out.(map[string]any)["Export"].(map[string]any); ok {
				values[`{"Fn::ImportValue":"`+exp["Name"].(string)+`"}`] = vpcID
			}
		}
	}
	values[`{"Ref":"`+logicalID(t, tpl, "AWS::EC2::VPC", "Vpc")+`"}`] = vpcID
	values[`{"Fn::GetAtt":["`+logicalID(t, tpl, "AWS::EC2::EIP", "VpcpublicSubnet1EIP")+`","PublicIp"]}`] = natIP
	values[`{"Fn::GetAtt":["`+logicalID(t, tpl, "AWS::EC2::Instance", "Web")+`","PublicIp"]}`] = webIP
	values[`{"Fn::GetAtt":["`+logicalID(t, tpl, "AWS::EC2::Instance", "Luke")+`","PublicIp"]}`] = sharedAIP

	var scenarios []scenario
	for _, r := range rows {
		t.Run(r.name+" renders and records the trust", func(t *testing.T) {
			id, p := policyOf(t, tpl, r.role)
			doc := docJSON(p)
			for _, s := range []string{`"` + egressPrefix + `"`, `"aws:SourceVpce":"` + sharedVpce + `"`} {
				if !strings.Contains(doc, s) {
					t.Errorf("lock %s lacks %s: %s", id, s, doc)
				}
			}
			md, _ := p["Metadata"].(map[string]any)
			b, _ := json.Marshal(md[lock.TrustMetadataKey])
			if want := `{"egressPrefixes":["` + egressPrefix + `"],"sharedVpcEndpoints":["` + sharedVpce + `"]}`; string(b) != want {
				t.Errorf("Metadata %s = %s, want %s", lock.TrustMetadataKey, b, want)
			}
		})
		viaShared := creds(map[string]any{"aws:SourceVpc": sharedServices, "aws:SourceVpce": sharedVpce, "aws:VpcSourceIp": ownPrivate})
		viaOther := creds(map[string]any{"aws:SourceVpc": sharedServices, "aws:SourceVpce": otherVpce, "aws:VpcSourceIp": ownPrivate})
		scenarios = append(scenarios,
			scenario{r.role, "through the trusted egress prefix", public(egressHost), iameval.Allowed},
			scenario{r.role, "through the shared VPC endpoint", viaShared, iameval.Allowed},
			scenario{r.role, "stolen, through another endpoint of the shared-services VPC", viaOther, iameval.ExplicitlyDenied},
			scenario{r.role, "stolen, another host through the shared VPC endpoint",
				creds(map[string]any{"aws:SourceVpc": sharedServices, "aws:SourceVpce": sharedVpce, "aws:VpcSourceIp": otherPrivate}), iameval.ExplicitlyDenied},
			scenario{r.role, "stolen, attacker IP", public(attacker), iameval.ExplicitlyDenied},
			scenario{r.role, "own VPC endpoint", endpoint(vpcID, ownPrivate), iameval.Allowed},
		)
		if r.ownIP != "" {
			scenarios = append(scenarios, scenario{r.role, "own public address", public(r.ownIP), iameval.Allowed})
		}
	}
	evaluateLocks(t, tpl, values, scenarios)
}
