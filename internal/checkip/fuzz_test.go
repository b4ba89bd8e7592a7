package checkip

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func FuzzParseBody(f *testing.F) {
	for _, seed := range []string{
		"203.0.113.7\n", "2001:db8::1\n", "10.0.0.1, 203.0.113.7", "::ffff:203.0.113.7",
		"<html></html>", "", " \n", "10.0.0.1", "fe80::1%eth0", "203.0.113.7,", "a, b, 198.51.100.1",
		"100.64.0.1", "255.255.255.255", "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, note, err := ParseBody(body)
		if err != nil {
			if p.IsValid() || note != "" {
				t.Fatalf("ParseBody(%q) returned %v, %q alongside error %v", body, p, note, err)
			}
			if !strings.HasPrefix(err.Error(), "checkip: ") {
				t.Fatalf("error %q lacks the checkip: prefix", err)
			}
			return
		}
		a := p.Addr()
		switch {
		case !p.IsValid():
			t.Fatalf("ParseBody(%q) = invalid prefix %v", body, p)
		case p.Bits() != a.BitLen():
			t.Fatalf("ParseBody(%q) = %v, want a full-length (single-address) prefix", body, p)
		case a.Zone() != "" || a.Is4In6():
			t.Fatalf("ParseBody(%q) = %v, which has a zone or is IPv4-mapped", body, p)
		case lockpolicy.NonPublicReason(a) != "":
			t.Fatalf("ParseBody(%q) = %v, which is %s", body, p, lockpolicy.NonPublicReason(a))
		}
		// The canonical form must parse back to the same prefix without a note.
		q, note2, err := ParseBody([]byte(a.String()))
		if err != nil || q != p || note2 != "" {
			t.Fatalf("round trip of %v: got %v, %q, %v", p, q, note2, err)
		}
	})
}

func FuzzParseCIDRs(f *testing.F) {
	for _, seed := range []string{
		"203.0.113.0/24", "203.0.113.7", "2001:db8::/32", "none", " NONE ", "",
		"10.0.0.1/24", "0.0.0.0/0", "::/0", "::ffff:1.2.3.4", "fe80::1%eth0",
		"1.2.3.4,1.2.3.4/32", "none,1.2.3.4", "1.2.3.4,,5.6.7.8", "10.0.0.0/8, 2001:db8::1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCIDRs(s)
		if err != nil {
			if got != nil {
				t.Fatalf("ParseCIDRs(%q) returned %v alongside error %v", s, got, err)
			}
			if !strings.HasPrefix(err.Error(), "checkip: ") {
				t.Fatalf("error %q lacks the checkip: prefix", err)
			}
			return
		}
		if got == nil {
			t.Fatalf("ParseCIDRs(%q) returned a nil slice without error", s)
		}
		if len(got) == 0 && !strings.EqualFold(strings.TrimSpace(s), "none") {
			t.Fatalf("ParseCIDRs(%q) returned no CIDRs, but the input is not \"none\"", s)
		}
		seen := make(map[netip.Prefix]bool, len(got))
		parts := make([]string, len(got))
		for i, p := range got {
			switch {
			case !p.IsValid():
				t.Fatalf("ParseCIDRs(%q)[%d] is invalid", s, i)
			case p.Bits() == 0:
				t.Fatalf("ParseCIDRs(%q)[%d] = %v, a /0", s, i, p)
			case p.Masked() != p:
				t.Fatalf("ParseCIDRs(%q)[%d] = %v has host bits set", s, i, p)
			case p.Addr().Zone() != "" || p.Addr().Is4In6():
				t.Fatalf("ParseCIDRs(%q)[%d] = %v has a zone or is IPv4-mapped", s, i, p)
			case seen[p]:
				t.Fatalf("ParseCIDRs(%q) returned %v twice", s, p)
			}
			seen[p] = true
			parts[i] = p.String()
		}
		// The canonical form must parse back to the same list.
		if len(got) > 0 {
			again, err := ParseCIDRs(strings.Join(parts, ","))
			if err != nil || len(again) != len(got) {
				t.Fatalf("round trip of %v: got %v, %v", got, again, err)
			}
			for i := range got {
				if again[i] != got[i] {
					t.Fatalf("round trip of %v: got %v", got, again)
				}
			}
		}
	})
}
