package lockpolicy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestIsVPCID(t *testing.T) {
	for s, want := range map[string]bool{
		"vpc-0123456789abcdef0":  true,
		"vpc-01234567":           true,
		"vpc-0123456":            false,
		"vpc-0123456789ABCDEF0":  false,
		"vpc-0123456789abcdef01": false,
		"subnet-01234567":        false,
		"":                       false,
	} {
		if got := IsVPCID(s); got != want {
			t.Errorf("IsVPCID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNonPublicReason(t *testing.T) {
	tests := []struct {
		addr, want string // want "" for public
	}{
		{"203.0.113.10", ""},
		{"2001:db8::1", ""},
		{"52.94.0.10", ""},
		{"10.0.0.1", "private (RFC 1918)"},
		{"fd00::1", "unique local"},
		{"127.0.0.1", "loopback"},
		{"::1", "loopback"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"224.0.0.1", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"100.64.0.1", "shared address space"},
		{"0.1.2.3", "this network"},
		{"255.255.255.255", "reserved"},
		{"::ffff:203.0.113.10", "IPv4-mapped"},
		{"fe80::1%eth0", "zoned"},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		got := NonPublicReason(a)
		if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("NonPublicReason(%s) = %q, want %q", tt.addr, got, tt.want)
		}
		if IsPublic(a) != (tt.want == "") {
			t.Errorf("IsPublic(%s) = %v", tt.addr, IsPublic(a))
		}
	}
}

func TestIsPrivateNetwork(t *testing.T) {
	for s, want := range map[string]bool{
		"10.0.0.1": true, "192.168.1.1": true, "fd00::1": true, "100.64.3.4": true, "127.0.0.1": true, "fe80::1": true,
		"203.0.113.10": false, "2001:db8::1": false, "0.0.0.0": false, "224.0.0.1": false, "240.0.0.1": false,
	} {
		if got := IsPrivateNetwork(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsPrivateNetwork(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestPublicPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for not public
	}{
		{"203.0.113.10", "203.0.113.10/32"},
		{"2001:db8::7", "2001:db8::7/128"},
		{"2001:db8:1234:0:1::/80", "2001:db8:1234:0:1::/80"},
		{"2001:db8:1234:0:1::5/80", "2001:db8:1234:0:1::/80"},
		{"10.0.0.5", ""},
		{"100.64.0.7", ""},
		{"0.0.0.0/0", ""},
		{"::/0", ""},
		{"fe80::1%eth0", ""},
		{"not-an-ip", ""},
	}
	for _, tt := range tests {
		p, ok := PublicPrefix(tt.in)
		if ok != (tt.want != "") || (ok && p.String() != tt.want) {
			t.Errorf("PublicPrefix(%q) = %v, %v; want %q", tt.in, p, ok, tt.want)
		}
	}
}

// TestRenderRejectsWhatCheckipRejects: a lock may list only addresses that
// can be aws:SourceIp. Before the public-address check was shared, Render
// accepted the shared address space, 0.0.0.0/8 and 240.0.0.0/4, which no
// internet caller can have.
func TestRenderRejectsWhatCheckipRejects(t *testing.T) {
	for _, ip := range []string{"100.64.0.1", "100.127.255.254/32", "0.1.2.3", "240.0.0.1", "255.255.255.255"} {
		if _, err := Render(Lock{SourceIPs: []string{ip}}, Options{}); !errors.Is(err, ErrInvalidSourceIP) {
			t.Errorf("Render(%s): err = %v, want ErrInvalidSourceIP", ip, err)
		}
	}
}
