package detect_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func TestDecideOnFixtures(t *testing.T) {
	inv := world()
	tests := []struct {
		scenario ctt.Scenario
		kind     detect.VerdictKind
		severity detect.Severity
	}{
		{ctt.InstanceFromPublicIP, detect.OK, ""},
		{ctt.InstanceFromElasticIP, detect.OK, ""},
		{ctt.InstanceFromIPv6, detect.OK, ""},
		{ctt.InstanceViaNAT, detect.OK, ""},
		{ctt.InstanceViaOwnEndpoint, detect.OK, ""},
		{ctt.InstanceIMDSv1Old, detect.OK, ""},
		{ctt.InstanceViaForeignVPCE, detect.BadSource, detect.SeverityHigh},
		{ctt.StolenFromForeignIP, detect.BadSource, detect.SeverityHigh},
		{ctt.StolenFailedCall, detect.BadSource, detect.SeverityHigh},
		{ctt.FakeInstanceSessionName, detect.BadSource, detect.SeverityHigh},
		{ctt.UnknownInstanceCall, detect.InstanceMissing, detect.SeverityMedium},
	}
	for _, tt := range tests {
		t.Run("a "+string(tt.scenario)+" is "+tt.kind.String(), func(t *testing.T) {
			rec := record(tt.scenario)
			id, ok := detect.IsInstanceSession(&rec)
			if !ok {
				t.Fatal("not an instance session")
			}
			inst, found, _ := inv.Lookup(t.Context(), id)
			v := detect.Decide(&rec, inst, found)
			if v.Kind != tt.kind || v.Severity != tt.severity || v.Reason == "" {
				t.Errorf("Decide = %+v, want %v %q", v, tt.kind, tt.severity)
			}
		})
	}
}

func TestDecideEdgeCases(t *testing.T) {
	inst := theInstance()
	inst.PrivatePrefixes = []netip.Prefix{netip.MustParsePrefix("10.0.1.64/28")}
	mk := func(src, vpce, vpceAccount string) cloudtrail.Record {
		r := record(ctt.InstanceFromPublicIP)
		r.SourceIPAddress, r.VPCEndpointID, r.VPCEndpointAccountID = src, vpce, vpceAccount
		return r
	}
	strict := detect.Policy{RequireInstancePrivateIP: true}
	shared := detect.Policy{TrustedVPCEndpoints: []string{"vpce-0shared"}}
	tests := []struct {
		name     string
		policy   detect.Policy
		rec      cloudtrail.Record
		kind     detect.VerdictKind
		severity detect.Severity
	}{
		{"an IPv4-mapped IPv6 form of the public IP is OK", detect.Policy{}, mk("::ffff:"+ctt.PublicIP, "", ""), detect.OK, ""},
		{"another machine's private IP through the VPC's endpoint is OK by default", detect.Policy{}, mk(ctt.OtherPrivateIP, ctt.OwnEndpoint, ""), detect.OK, ""},
		{"another machine's private IP through the VPC's endpoint is MEDIUM when strict", strict, mk(ctt.OtherPrivateIP, ctt.OwnEndpoint, ""), detect.BadSource, detect.SeverityMedium},
		{"the instance's own private IP through the VPC's endpoint is OK when strict", strict, mk(ctt.PrivateIP, ctt.OwnEndpoint, ""), detect.OK, ""},
		{"an address of a delegated prefix through the VPC's endpoint is OK when strict", strict, mk("10.0.1.70", ctt.OwnEndpoint, ""), detect.OK, ""},
		{"a public source through the instance VPC's endpoint is judged by the address", detect.Policy{}, mk(ctt.AttackerIP, ctt.OwnEndpoint, ""), detect.BadSource, detect.SeverityHigh},
		{"a foreign endpoint owned by the same account is MEDIUM", detect.Policy{}, mk("172.31.0.9", "vpce-0other", ctt.Account), detect.BadSource, detect.SeverityMedium},
		{"a foreign endpoint with no recorded owner is HIGH", detect.Policy{}, mk("172.31.0.9", "vpce-0other", ""), detect.BadSource, detect.SeverityHigh},
		{"the instance's private IP through a trusted shared endpoint is OK", shared, mk(ctt.PrivateIP, "vpce-0shared", ctt.OtherAccount), detect.OK, ""},
		{"another machine's private IP through a trusted shared endpoint is MEDIUM", shared, mk("10.200.0.9", "vpce-0shared", ctt.OtherAccount), detect.BadSource, detect.SeverityMedium},
		{"a public source through a trusted shared endpoint is judged by the address", shared, mk(ctt.AttackerIP, "vpce-0shared", ctt.OtherAccount), detect.BadSource, detect.SeverityHigh},
		{"an untrusted endpoint of another VPC is still HIGH with shared endpoints configured", shared, mk(ctt.PrivateIP, "vpce-0other", ctt.OtherAccount), detect.BadSource, detect.SeverityHigh},
		{"a trusted egress prefix is OK", detect.Policy{TrustedSourcePrefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, mk(ctt.AttackerIP, "", ""), detect.OK, ""},
		{"a private source without an endpoint is MEDIUM", detect.Policy{}, mk("10.0.1.10", "", ""), detect.BadSource, detect.SeverityMedium},
		{"a carrier-grade NAT source without an endpoint is MEDIUM", detect.Policy{}, mk("100.64.3.4", "", ""), detect.BadSource, detect.SeverityMedium},
		{"a source that is not an address is MEDIUM", detect.Policy{}, mk("example.com", "", ""), detect.BadSource, detect.SeverityMedium},
		{"an empty source is MEDIUM", detect.Policy{}, mk("", "", ""), detect.BadSource, detect.SeverityMedium},
		{"a foreign public IPv6 source is HIGH", detect.Policy{}, mk("2001:db8:ffff::1", "", ""), detect.BadSource, detect.SeverityHigh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.policy.Decide(&tt.rec, inst, true)
			if v.Kind != tt.kind || v.Severity != tt.severity {
				t.Errorf("Decide = %+v, want %v %q", v, tt.kind, tt.severity)
			}
		})
	}
	t.Run("through a shared endpoint only the primary private IPv4 is the instance's, as for its lock", func(t *testing.T) {
		multi := theInstance()
		multi.PrivateIPs = addrs(ctt.PrivateIP, "10.0.1.11")
		multi.PrimaryPrivateIP = netip.MustParseAddr(ctt.PrivateIP)
		tests := []struct {
			name   string
			inst   detect.Instance
			src    string
			wantOK bool
		}{
			{"the primary address is OK", multi, ctt.PrivateIP, true},
			{"a secondary address is not (the lock denies it)", multi, "10.0.1.11", false},
			{"without a known primary, any of the instance's addresses is", theInstance(), ctt.PrivateIP, true},
			{"without a known primary, another machine's address is not", theInstance(), ctt.OtherPrivateIP, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := mk(tt.src, "vpce-0shared", ctt.OtherAccount)
				if v := shared.Decide(&r, tt.inst, true); (v.Kind == detect.OK) != tt.wantOK {
					t.Errorf("Decide = %+v, want OK %v", v, tt.wantOK)
				}
			})
		}
	})
	t.Run("a trusted egress prefix admits every instance, and nothing next to it", func(t *testing.T) {
		p := detect.Policy{TrustedSourcePrefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}}
		for src, want := range map[string]detect.VerdictKind{"192.0.2.200": detect.OK, "192.0.2.127": detect.BadSource, ctt.AttackerIP: detect.BadSource} {
			r := mk(src, "", "")
			if v := p.Decide(&r, theInstance(), true); v.Kind != want {
				t.Errorf("%s: Decide = %+v, want %v", src, v, want)
			}
		}
	})
	t.Run("an unknown instance is InstanceMissing whatever the source", func(t *testing.T) {
		r := mk(ctt.PublicIP, "", "")
		if v := detect.Decide(&r, detect.Instance{}, false); v.Kind != detect.InstanceMissing {
			t.Errorf("Decide = %+v", v)
		}
	})
	t.Run("a foreign endpoint's reason names the endpoint and its owner", func(t *testing.T) {
		r := record(ctt.InstanceViaForeignVPCE)
		v := detect.Decide(&r, inst, true)
		if !strings.Contains(v.Reason, ctt.ForeignEndpoint) || !strings.Contains(v.Reason, ctt.OtherAccount) {
			t.Errorf("Reason = %q", v.Reason)
		}
	})
}

func TestVerdictKindNames(t *testing.T) {
	for k, want := range map[detect.VerdictKind]string{detect.OK: "OK", detect.BadSource: "BadSource",
		detect.InstanceMissing: "InstanceMissing", 9: "VerdictKind(9)"} {
		t.Run(want+" names itself", func(t *testing.T) {
			if k.String() != want {
				t.Errorf("String() = %q", k.String())
			}
		})
	}
}
