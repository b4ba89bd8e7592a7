package lockpolicy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseTrust(t *testing.T) {
	tests := []struct {
		name          string
		prefixes, eps string
		want          Trust
		wantErr       []string // substrings of the error; nil: no error
	}{
		{name: "nothing", want: Trust{}},
		{name: "blanks and empty items are nothing", prefixes: " , ,", eps: ",", want: Trust{}},
		{name: "prefixes canonicalised, sorted, deduplicated", prefixes: "198.51.100.200, 192.0.2.128/28,198.51.100.200/32",
			want: Trust{EgressPrefixes: []string{"192.0.2.128/28", "198.51.100.200/32"}}},
		{name: "IPv6 prefix", prefixes: "2001:db8:100::/48", want: Trust{EgressPrefixes: []string{"2001:db8:100::/48"}}},
		{name: "endpoints", eps: "vpce-0bbbb2222cccc3333,vpce-01234567",
			want: Trust{SharedVPCEndpoints: []string{"vpce-01234567", "vpce-0bbbb2222cccc3333"}}},
		{name: "the whole internet is refused", prefixes: "0.0.0.0/0", wantErr: []string{"trusted egress prefix", `"0.0.0.0/0"`, "whole internet"}},
		{name: "half the internet is refused", prefixes: "128.0.0.0/1", wantErr: []string{`"128.0.0.0/1"`, "wider than /16"}},
		{name: "a /16 is the widest IPv4", prefixes: "203.0.0.0/16", want: Trust{EgressPrefixes: []string{"203.0.0.0/16"}}},
		{name: "a /15 is too wide", prefixes: "203.0.0.0/15", wantErr: []string{"wider than /16"}},
		{name: "a /31 IPv6 is too wide", prefixes: "2001:db8::/31", wantErr: []string{"wider than /32"}},
		{name: "a private range never appears in aws:SourceIp", prefixes: "10.0.0.0/8", wantErr: []string{`"10.0.0.0/8"`, "not a public address"}},
		{name: "host bits", prefixes: "192.0.2.130/28", wantErr: []string{`"192.0.2.130/28"`, "host bits"}},
		{name: "garbage", prefixes: "central-nat", wantErr: []string{`"central-nat"`}},
		{name: "a VPC id is not an endpoint id, and the error says how to list its endpoints", eps: "vpc-0aaaa1111bbbb2222",
			wantErr: []string{"shared VPC endpoint", `"vpc-0aaaa1111bbbb2222"`, "describe-vpc-endpoints --filters Name=vpc-id,Values=vpc-0aaaa1111bbbb2222"}},
		{name: "upper case endpoint id", eps: "VPCE-0BBBB2222CCCC3333", wantErr: []string{`"VPCE-0BBBB2222CCCC3333"`}},
		{name: "every bad item is named", prefixes: "10.0.0.0/8,nope", eps: "vpce-x",
			wantErr: []string{`"10.0.0.0/8"`, `"nope"`, `"vpce-x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrust(tt.prefixes, tt.eps)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseTrust = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTrust: %v", err)
			}
			if !slices.Equal(got.EgressPrefixes, tt.want.EgressPrefixes) || !slices.Equal(got.SharedVPCEndpoints, tt.want.SharedVPCEndpoints) {
				t.Errorf("ParseTrust = %+v, want %+v", got, tt.want)
			}
			// Env is read back by ParseTrust to the same value.
			p, e := got.Env()
			again, err := ParseTrust(p, e)
			if err != nil || !slices.Equal(again.EgressPrefixes, got.EgressPrefixes) || !slices.Equal(again.SharedVPCEndpoints, got.SharedVPCEndpoints) {
				t.Errorf("Env round trip = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestRenderWithTrust(t *testing.T) {
	isToken := func(s string) bool { return strings.HasPrefix(s, "${Token[") }
	// A token passes unvalidated; the trusted prefix joins the source IPs.
	doc, err := Render(Lock{SourceIPs: []string{"${Token[TOKEN.1]}"}, VPCs: []string{instanceVPC},
		Trust: Trust{EgressPrefixes: []string{centralEgressPrefix}, SharedVPCEndpoints: []string{"${Token[TOKEN.2]}"}}},
		Options{IsToken: isToken})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	b, _ := doc.JSON()
	for _, want := range []string{`"${Token[TOKEN.1]}"`, `"` + centralEgressPrefix + `"`, `"aws:SourceVpce":"${Token[TOKEN.2]}"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("lock %s lacks %s", b, want)
		}
	}
	// Trust alone is something to lock to; nothing at all is not.
	if _, err := Render(Lock{Trust: Trust{EgressPrefixes: []string{corporateProxyIP}}}, Options{}); err != nil {
		t.Errorf("Render(trust only): %v", err)
	}
	if _, err := Render(Lock{}, Options{}); !errors.Is(err, ErrNothingToLock) {
		t.Errorf("Render(empty) = %v, want ErrNothingToLock", err)
	}
	// A bad trust value fails the render and is named.
	_, err = Render(Lock{VPCs: []string{instanceVPC}, Trust: Trust{SharedVPCEndpoints: []string{"vpce-nothex!"}}}, Options{})
	if !errors.Is(err, ErrInvalidVPCEndpoint) || !strings.Contains(err.Error(), "vpce-nothex!") {
		t.Errorf("Render(bad endpoint) = %v, want ErrInvalidVPCEndpoint naming it", err)
	}
	// Without trust the document is byte-identical to the one before Trust existed.
	plain, _ := Render(standardLock, Options{})
	pb, _ := plain.JSON()
	if strings.Contains(string(pb), "aws:SourceVpce") {
		t.Errorf("a lock without shared endpoints mentions aws:SourceVpce: %s", pb)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	for _, bad := range []string{"", "public-ip", "NAT-EGRESS", "vpc-endpoints-only "} {
		_, err := ParseMode(bad)
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), string(ModeNATEgress)) {
			t.Errorf("ParseMode(%q) = %v, want an error naming it and the modes", bad, err)
		}
	}
}
