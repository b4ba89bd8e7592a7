package battleground

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPropsValidation(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		name  string
		props Props
		want  string // "" means valid
	}{
		{"the zero value is valid", Props{}, ""},
		{"two pinned CIDRs are valid", Props{SSHCIDRs: []netip.Prefix{p("203.0.113.10/32"), p("2001:db8::/64")}}, ""},
		{"the whole IPv4 internet is refused", Props{SSHCIDRs: []netip.Prefix{p("0.0.0.0/0")}}, "whole internet"},
		{"the whole IPv6 internet is refused", Props{SSHCIDRs: []netip.Prefix{p("::/0")}}, "whole internet"},
		{"host bits are refused with the network named", Props{SSHCIDRs: []netip.Prefix{p("10.0.0.1/24")}}, "did you mean 10.0.0.0/24"},
		{"an invalid prefix is refused", Props{SSHCIDRs: []netip.Prefix{{}}}, "SSHCIDRs[0]"},
		{"a duplicate is refused", Props{SSHCIDRs: []netip.Prefix{p("203.0.113.10/32"), p("203.0.113.10/32")}}, "twice"},
		{"an IPv4-mapped prefix is refused", Props{SSHCIDRs: []netip.Prefix{p("::ffff:203.0.113.10/128")}}, "plain IPv4"},
		{"too many AZs", Props{MaxAzs: 7}, "MaxAzs"},
		{"more NAT gateways than AZs", Props{NATGateways: 3}, "NATGateways"},
		{"a retention CloudWatch does not offer", Props{FlowLogRetentionDays: 10}, "FlowLogRetentionDays"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.props.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}
