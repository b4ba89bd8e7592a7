package detector_test

import (
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
)

// TestShadowReachesTheFunction: Props.Shadow becomes the environment that the function's own
// loader (shadowrun.FromEnv) turns into a runner with the same proposal; bad proposals fail
// at synth and name the field.
func TestShadowReachesTheFunction(t *testing.T) {
	scp, err := lockpolicy.SCP(lockpolicy.SCPOptions{Trust: lockpolicy.Trust{SharedVPCEndpoints: []string{"vpce-0bbbb2222cccc3333"}}})
	if err != nil {
		t.Fatal(err)
	}
	scpJSON, err := scp.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		shadow *detector.Shadow
		mode   string // want Runner.Mode()
	}{
		{"a lock mode", &detector.Shadow{Mode: lock.VPCEndpointsOnly}, string(lockpolicy.ModeVPCEndpointsOnly)},
		{"the organisation's SCP", &detector.Shadow{Policy: string(scpJSON)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, fn := one(t, synth(t, &detector.Props{Shadow: tt.shadow}), "AWS::Lambda::Function")
			vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			r, err := shadowrun.FromEnv(func(k string) string { s, _ := vars[k].(string); return s })
			if err != nil || r == nil {
				t.Fatalf("the function's loader: runner %v, %v", r, err)
			}
			if tt.mode != "" && string(r.Mode()) != tt.mode {
				t.Errorf("runner mode %q, want %q", r.Mode(), tt.mode)
			}
		})
	}
	_, fn := one(t, synth(t, &detector.Props{}), "AWS::Lambda::Function")
	if vars, _ := fn["Environment"].(map[string]any)["Variables"].(map[string]any); vars[shadowrun.EnvShadowMode] != nil || vars[shadowrun.EnvShadowPolicy] != nil {
		t.Errorf("shadow mode is on without Props.Shadow: %v", vars)
	}
	for _, bad := range []struct {
		shadow *detector.Shadow
		want   string
	}{
		{&detector.Shadow{}, "set Mode or Policy"},
		{&detector.Shadow{Mode: lock.VPCEndpointsOnly, Policy: string(scpJSON)}, "not both"},
		{&detector.Shadow{Mode: "public-ip"}, `"public-ip"`},
		{&detector.Shadow{Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`}, "Props.Shadow.Policy"},
	} {
		err := (&detector.Props{Shadow: bad.shadow}).Validate()
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", bad.shadow, err, bad.want)
		}
	}
}
