package shadowrun

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func TestConfigFromEnv(t *testing.T) {
	scpDoc := string(scp(t, lockpolicy.SCPOptions{}))
	encoded, err := EncodePolicy([]byte(scpDoc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		env          map[string]string
		wantEnabled  bool
		wantMode     lockpolicy.Mode
		wantTrust    bool
		wantPolicy   bool
		wantErr      string
		wantProposal string
	}{
		{name: "nothing set turns shadow mode off", env: map[string]string{}},
		{name: "blanks are nothing", env: map[string]string{EnvShadowMode: "  ", EnvShadowPolicy: "\t"}},
		{name: "a lock mode", env: map[string]string{EnvShadowMode: "nat-egress"},
			wantEnabled: true, wantMode: lockpolicy.ModeNATEgress, wantProposal: "lock:nat-egress"},
		{name: "a lock mode with the app's trust", env: map[string]string{EnvShadowMode: "vpc-endpoints-only",
			contract.EnvTrustedEgressPrefixes: "192.0.2.128/28", contract.EnvSharedVPCEndpoints: "vpce-0bbbb2222cccc3333"},
			wantEnabled: true, wantMode: lockpolicy.ModeVPCEndpointsOnly, wantTrust: true, wantProposal: "lock:vpc-endpoints-only+trust:"},
		{name: "the trust is ignored with a policy", env: map[string]string{EnvShadowPolicy: scpDoc, contract.EnvSharedVPCEndpoints: "bogus"},
			wantEnabled: true, wantPolicy: true, wantProposal: "policy:sha256:"},
		{name: "a policy as gzip and base64", env: map[string]string{EnvShadowPolicy: encoded},
			wantEnabled: true, wantPolicy: true, wantProposal: "policy:sha256:"},
		{name: "a policy as plain base64", env: map[string]string{EnvShadowPolicy: base64.StdEncoding.EncodeToString([]byte(scpDoc))},
			wantEnabled: true, wantPolicy: true, wantProposal: "policy:sha256:"},
		{name: "both is an error naming both", env: map[string]string{EnvShadowMode: "nat-egress", EnvShadowPolicy: scpDoc},
			wantErr: EnvShadowMode + " and " + EnvShadowPolicy + " are both set"},
		{name: "an unknown mode names the variable and the modes", env: map[string]string{EnvShadowMode: "nat"},
			wantErr: EnvShadowMode + `: lockpolicy: unknown lock mode "nat": want one of instance-public-ip, elastic-ip, nat-egress, vpc-endpoints-only`},
		{name: "a bad egress prefix names its variable", env: map[string]string{EnvShadowMode: "nat-egress", contract.EnvTrustedEgressPrefixes: "10.0.0.0/8"},
			wantErr: contract.EnvTrustedEgressPrefixes + " (with " + EnvShadowMode + ")"},
		{name: "a bad shared endpoint names its variable", env: map[string]string{EnvShadowMode: "nat-egress", contract.EnvSharedVPCEndpoints: "vpc-0bbbb2222cccc3333"},
			wantErr: contract.EnvSharedVPCEndpoints + " (with " + EnvShadowMode + ")"},
		{name: "a policy outside the vocabulary names the variable and what it found", env: map[string]string{EnvShadowPolicy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`},
			wantErr: EnvShadowPolicy + ": "},
		{name: "a policy that is not JSON", env: map[string]string{EnvShadowPolicy: "{not json"},
			wantErr: EnvShadowPolicy + ": "},
		{name: "a policy that is neither JSON nor base64", env: map[string]string{EnvShadowPolicy: "deny everything"},
			wantErr: EnvShadowPolicy + ": neither a JSON policy document nor base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			cfg, err := ConfigFromEnv(getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if _, ferr := FromEnv(getenv); ferr == nil {
					t.Fatal("FromEnv accepts what ConfigFromEnv refuses")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Enabled() != tc.wantEnabled || cfg.Mode != tc.wantMode || cfg.Trust.Empty() == tc.wantTrust || (cfg.Policy != nil) != tc.wantPolicy {
				t.Fatalf("config %+v", cfg)
			}
			r, err := FromEnv(getenv)
			if err != nil {
				t.Fatal(err)
			}
			if (r != nil) != tc.wantEnabled {
				t.Fatalf("FromEnv = %v, want a runner: %v", r, tc.wantEnabled)
			}
			if !strings.HasPrefix(r.Proposal(), tc.wantProposal) {
				t.Errorf("proposal %q, want %q...", r.Proposal(), tc.wantProposal)
			}
		})
	}
}

func TestNewRefusesAConfigWithoutExactlyOneProposal(t *testing.T) {
	for name, cfg := range map[string]Config{
		"neither":             {},
		"both":                {Mode: lockpolicy.ModeNATEgress, Policy: []byte(`{}`)},
		"a mode that is none": {Mode: "nat"},
		"a bad trust":         {Mode: lockpolicy.ModeNATEgress, Trust: lockpolicy.Trust{EgressPrefixes: []string{"0.0.0.0/0"}}},
		"a bad policy":        {Policy: []byte(`{"Version":"2012-10-17"}`)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Config.") && !strings.Contains(err.Error(), "nothing to shadow") {
				t.Fatalf("New(%s) = %v, want an error naming the field", name, err)
			}
		})
	}
}

func TestEncodePolicyPicksTheShorterForm(t *testing.T) {
	small := `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`
	big := string(scp(t, lockpolicy.SCPOptions{Trust: trust, RestrictInternet: true, ExemptAccounts: []string{"111122223333", "444455556666"}}))
	for name, doc := range map[string]string{"small": small, "big": big} {
		t.Run(name, func(t *testing.T) {
			enc, err := EncodePolicy([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) > len(doc) {
				t.Errorf("encoded %d bytes, longer than the document's %d", len(enc), len(doc))
			}
			dec, err := DecodePolicy(enc)
			if err != nil || string(dec) != doc {
				t.Fatalf("DecodePolicy(EncodePolicy(doc)) = %q, %v", dec, err)
			}
		})
	}
	if enc, _ := EncodePolicy([]byte(big)); strings.HasPrefix(enc, "{") {
		t.Errorf("a %d-byte SCP is not compressed", len(big))
	}
}
