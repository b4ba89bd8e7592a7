package test

import (
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// TestShadowModeFromTheContext: defenders:shadowMode (a lock mode) and, in organisation mode,
// defenders:shadowScp (the SCP the scp keys describe, deployed or not) reach the detector, whose
// own loader turns them into a runner; mistakes are errors that name the key.
func TestShadowModeFromTheContext(t *testing.T) {
	vars := func(s *synthed, stack string) map[string]any {
		for _, r := range cdktest.Resources(s.Templates[stack], "AWS::Lambda::Function") {
			v, _ := cdktest.Props(r)["Environment"].(map[string]any)["Variables"].(map[string]any)
			if v[contract.EnvTopicARN] != nil {
				return v
			}
		}
		t.Fatalf("no detector function in %s", stack)
		return nil
	}
	runner := func(v map[string]any) *shadowrun.Runner {
		r, err := shadowrun.FromEnv(func(k string) string { s, _ := v[k].(string); return s })
		if err != nil {
			t.Fatalf("the detector's loader: %v", err)
		}
		return r
	}
	s := synth(t, map[string]any{"defenders:sshCidr": "none", contract.KeyShadowMode: "vpc-endpoints-only"}, nil)
	if r := runner(vars(s, "detector")); r == nil || r.Mode() != "vpc-endpoints-only" {
		t.Errorf("single account: runner %v, want shadow mode vpc-endpoints-only", r)
	}
	org := map[string]any{contract.KeyShadowSCP: true}
	for k, v := range orgCtx {
		if k != "defenders:scp" && k != "defenders:scpTargets" { // shadowed, not deployed
			org[k] = v
		}
	}
	s = synth(t, org, nil)
	v := vars(s, "organization")
	if runner(v) == nil || v[contract.EnvShadowPolicy] == nil {
		t.Errorf("organisation: the SCP is not shadowed: %v", v)
	}
	if _, deployed := s.Templates["organization-scp"]; deployed {
		t.Errorf("shadowing the SCP deployed it")
	}
	for _, bad := range []struct {
		ctx  map[string]any
		want string
	}{
		{map[string]any{"defenders:sshCidr": "none", contract.KeyShadowMode: "public-ip"}, contract.KeyShadowMode},
		{map[string]any{"defenders:sshCidr": "none", contract.KeyShadowMode: "nat-egress", "defenders:detector": false}, contract.KeyShadowMode},
		{map[string]any{"defenders:sshCidr": "none", contract.KeyShadowSCP: true}, contract.KeyShadowSCP},
		{map[string]any{"defenders:sshCidr": "none", contract.KeyShadowMode: "nat-egress", contract.KeyShadowSCP: true,
			"defenders:organizationId": testOrg, "defenders:organizationTargets": "r-ab12", "defenders:organizationRegions": "us-east-1"}, "one proposal"},
	} {
		if err := synthErr(t, bad.ctx); !strings.Contains(err.Error(), bad.want) {
			t.Errorf("context %v: error %q does not name %s", bad.ctx, err, bad.want)
		}
	}
}
