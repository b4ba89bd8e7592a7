package locker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func TestConfigFromEnvReadsTheTrust(t *testing.T) {
	base := map[string]string{contract.EnvRolePath: "/defenders/", contract.EnvPolicyName: PolicyName}
	tests := []struct {
		name      string
		env       map[string]string
		want      lockpolicy.Trust
		wantInErr string
	}{
		{name: "no trust variable means trusting nothing", want: lockpolicy.Trust{}},
		{name: "both lists are read, canonicalised and sorted",
			env: map[string]string{
				contract.EnvTrustedEgressPrefixes: " 198.51.100.0/24, 203.0.113.9 ,,",
				contract.EnvSharedVPCEndpoints:    "vpce-0badc0ffee0123456,vpce-0aaaabbbbccccdddd",
			},
			want: lockpolicy.Trust{EgressPrefixes: []string{"198.51.100.0/24", "203.0.113.9/32"},
				SharedVPCEndpoints: []string{"vpce-0aaaabbbbccccdddd", "vpce-0badc0ffee0123456"}}},
		{name: "a private egress prefix fails the start naming its variable",
			env: map[string]string{contract.EnvTrustedEgressPrefixes: "10.0.0.0/8"}, wantInErr: contract.EnvTrustedEgressPrefixes},
		{name: "the whole internet as an egress prefix fails the start naming its variable",
			env: map[string]string{contract.EnvTrustedEgressPrefixes: "0.0.0.0/0"}, wantInErr: contract.EnvTrustedEgressPrefixes},
		{name: "a VPC id given as a shared endpoint fails the start naming its variable",
			env: map[string]string{contract.EnvSharedVPCEndpoints: "vpc-0123456789abcdef0"}, wantInErr: contract.EnvSharedVPCEndpoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := ConfigFromEnv(func(k string) string { return env[k] })
			if tt.wantInErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantInErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Trust.EgressPrefixes, tt.want.EgressPrefixes) || !slices.Equal(c.Trust.SharedVPCEndpoints, tt.want.SharedVPCEndpoints) {
				t.Errorf("trust %+v, want %+v", c.Trust, tt.want)
			}
		})
	}
}

func TestNewRejectsABadTrust(t *testing.T) {
	c := newFakeCloud()
	_, err := New(Config{EC2: c, IAM: c, CloudFormation: c, Trust: lockpolicy.Trust{EgressPrefixes: []string{"192.168.0.0/16"}}})
	if err == nil || !strings.Contains(err.Error(), "Config.Trust") {
		t.Errorf("err = %v, want a Config.Trust error", err)
	}
}

// TestTheTrustIsRenderedIntoEveryLock: every lock the locker writes admits
// the app's trust, as the construct's locks do; the deny-all of a role
// about which nothing is known admits nothing.
func TestTheTrustIsRenderedIntoEveryLock(t *testing.T) {
	trust := lockpolicy.Trust{EgressPrefixes: []string{"192.0.2.0/24"}, SharedVPCEndpoints: []string{"vpce-0aaaabbbbccccdddd"}}
	withTrust := func(t *testing.T, ips, vpcs []string) string {
		t.Helper()
		d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: ips, VPCs: vpcs, Trust: trust}, lockpolicy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name     string
		setup    func(c *fakeCloud, profile string)
		wantMode Mode
		want     func(t *testing.T) string
	}{
		{name: "the exact lock admits the trust",
			setup: func(c *fakeCloud, p string) {
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("203.0.113.10")))
			},
			wantMode: ModeExact, want: func(t *testing.T) string { return withTrust(t, []string{"203.0.113.10"}, []string{vpcA}) }},
		{name: "the VPC-endpoints-only lock admits the trust",
			setup: func(c *fakeCloud, p string) {
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "stopped", p, vpcA))
			},
			wantMode: ModeVPCEndpointsOnly, want: func(t *testing.T) string { return withTrust(t, nil, []string{vpcA}) }},
		{name: "an aggregated lock admits the trust",
			setup: func(c *fakeCloud, p string) {
				for i, a := range manyAddresses(600, false) {
					c.addInstance(instance(fmt.Sprintf("i-%017x", i+1), "running", p, vpcA, publicIP(a)))
				}
			},
			wantMode: ModeAggregated,
			want: func(t *testing.T) string {
				return withTrust(t, []string{"3.5.10.0/24", "3.5.11.0/24", "3.5.12.0/24"}, []string{vpcA})
			}},
		{name: "the deny-all of a role about which nothing is known admits nothing",
			setup:    func(c *fakeCloud, p string) {},
			wantMode: ModeDenyAll, want: denyAllJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud()
			p := c.addRole("web", "/defenders/")
			tt.setup(c, p)
			l, _ := newTestLocker(t, c, func(cfg *Config) { cfg.Trust = trust })
			rep, err := l.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res := onlyResult(t, rep); res.Mode != tt.wantMode {
				t.Fatalf("mode %s, want %s (%s)", res.Mode, tt.wantMode, res.Reason)
			}
			if got, want := c.lock("web"), tt.want(t); got != want {
				t.Errorf("lock = %s\nwant %s", got, want)
			}
		})
	}
}
