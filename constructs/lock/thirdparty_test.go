package lock_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/cloudformationinclude"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestThirdPartyTemplatesThroughCfnInclude: real templates (the review's corpus, sources and
// licences in internal/review/testdata/corpus/README.md) brought into a CDK app with CfnInclude,
// as a team adopting Defenders does with what it already runs, and locked with lock.Everything in
// each mode. Their instances name their subnet every way CloudFormation allows: a parameter
// (GetAtt of the template's own subnet) and an existing network interface at DeviceIndex "0" (a
// string) from an export, with an Elastic IP association. CfnInclude keeps the templates' logical
// ids by overriding them: the aspect failed to find the roles before it read the overridden ids,
// and refused endpoints-only because the subnets' VPC is not in the app (now the lock names the
// instance's own VPC, Fn::GetAtt VpcId). Every role is locked in every mode.
func TestThirdPartyTemplatesThroughCfnInclude(t *testing.T) {
	corpus := filepath.Join("..", "..", "internal", "review", "testdata", "corpus")
	templates := []struct{ file string }{
		{"awscfn-gitea-server-pkg.yaml"},       // SubnetId: !GetAtt of the template's own subnet
		{"widdix-ec2-al2-mutable-public.yaml"}, // an existing ENI at DeviceIndex "0", an Elastic IP
	}
	for _, mode := range []lock.Mode{lock.InstancePublicIP, lock.ElasticIP, lock.VPCEndpointsOnly} {
		for _, tt := range templates {
			t.Run(string(mode)+"/"+tt.file, func(t *testing.T) {
				app := awscdk.NewApp(nil)
				stack := awscdk.NewStack(app, jsii.String("adopted"), nil)
				cloudformationinclude.NewCfnInclude(stack, jsii.String("Template"), &cloudformationinclude.CfnIncludeProps{
					TemplateFile: jsii.String(filepath.Join(corpus, tt.file)),
				})
				if err := lock.Everything(app, &lock.Options{Mode: mode}); err != nil {
					t.Fatal(err)
				}
				asm := cdktest.Synth(t, app)
				tpl := asm.Templates["adopted"]
				roles := cdktest.Resources(tpl, "AWS::IAM::Role")
				if len(roles) == 0 {
					t.Fatalf("no role in %s", tt.file)
				}
				for id := range roles {
					errs := asm.Errors("")
					if !hasLock(tpl, id) {
						t.Errorf("role %s is not locked; errors %v", id, errs)
						continue
					}
					_, p := policyOf(t, tpl, id)
					doc := docJSON(p)
					if mode == lock.InstancePublicIP && !strings.Contains(doc, `"PublicIp"]`) {
						t.Errorf("role %s: the lock does not admit the instance's public IP: %s", id, doc)
					}
					// The subnets come from a parameter or an export: the VPC is the instance's own.
					if !strings.Contains(doc, `"VpcId"]`) {
						t.Errorf("role %s: the lock does not name the instance's VPC: %s", id, doc)
					}
					if mode == lock.VPCEndpointsOnly && !strings.Contains(doc, lockpolicy.SidDenyPublicCallsFromAnyAddress) {
						t.Errorf("role %s: an endpoints-only lock admits an internet address: %s", id, doc)
					}
				}
				// What the locks mean, with the instance's attributes resolved.
				values := map[string]any{}
				for iid := range cdktest.Resources(tpl, "AWS::EC2::Instance") {
					values[`{"Fn::GetAtt":["`+iid+`","VpcId"]}`] = vpcID
					values[`{"Fn::GetAtt":["`+iid+`","PublicIp"]}`] = webIP
				}
				for eid := range cdktest.Resources(tpl, "AWS::EC2::EIP") {
					values[`{"Fn::GetAtt":["`+eid+`","PublicIp"]}`] = eipIP
				}
				var rows []scenario
				for id := range roles {
					rows = append(rows,
						scenario{id, "the instance through an endpoint of its VPC", endpoint(vpcID, ownPrivate), iameval.Allowed},
						scenario{id, "another host through that endpoint", endpoint(vpcID, otherPrivate), iameval.ExplicitlyDenied},
						scenario{id, "an attacker over the internet", public(attacker), iameval.ExplicitlyDenied})
					switch mode {
					case lock.InstancePublicIP:
						rows = append(rows, scenario{id, "the instance from its public IP", public(webIP), iameval.Allowed})
					case lock.ElasticIP:
						rows = append(rows, scenario{id, "the instance from its Elastic IP", public(eipIP), iameval.Allowed})
					}
				}
				evaluateLocks(t, tpl, values, rows)
			})
		}
	}
}
