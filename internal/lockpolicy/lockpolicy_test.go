package lockpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// isCDKToken recognises CDK string tokens such as "${Token[TOKEN.123]}".
func isCDKToken(s string) bool { return strings.HasPrefix(s, "${Token[") && strings.HasSuffix(s, "]}") }

func mustJSON(t *testing.T, d Document) string {
	t.Helper()
	b, err := d.JSON()
	if err != nil {
		t.Fatalf("JSON: %v", err)
	}
	return string(b)
}

func TestRenderGolden(t *testing.T) {
	doc, err := Render(Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{"vpc-0123456789abcdef0"}}, Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	want := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"DenyPublicCallsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"NotIpAddress":{"aws:SourceIp":"203.0.113.10/32"},"Null":{"aws:SourceIp":"false"}}},` +
		`{"Sid":"DenyEndpointCallsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"},"StringNotEquals":{"aws:SourceVpc":"vpc-0123456789abcdef0"}}},` +
		`{"Sid":"DenyEndpointCallsFromOtherHosts","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true","aws:VpcSourceIp":"false"},"StringNotEquals":{"aws:Ec2InstanceSourcePrivateIPv4":"${aws:VpcSourceIp}"}}},` +
		`{"Sid":"DenyEndpointCallsFromOutsideTheInstanceVpc","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true","aws:SourceVpc":"false"},"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}"}}},` +
		`{"Sid":"DenyCallsWithoutSourceAddress","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true","aws:VpcSourceIp":"true"}}}]}`
	if got := mustJSON(t, doc); got != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
}

func TestRenderRejectsInvalidLocks(t *testing.T) {
	tests := []struct {
		name string
		lock Lock
		want error
	}{
		{"an empty lock is rejected", Lock{}, ErrNothingToLock},
		{"a lock with empty lists is rejected", Lock{SourceIPs: []string{}, VPCs: []string{}}, ErrNothingToLock},
		{"the whole IPv4 internet is rejected", Lock{SourceIPs: []string{"0.0.0.0/0"}}, ErrInvalidSourceIP},
		{"the whole IPv6 internet is rejected", Lock{SourceIPs: []string{"::/0"}}, ErrInvalidSourceIP},
		{"a /0 of any address is rejected", Lock{SourceIPs: []string{"203.0.113.10/0"}}, ErrInvalidSourceIP},
		{"a garbage address is rejected", Lock{SourceIPs: []string{"not-an-ip"}}, ErrInvalidSourceIP},
		{"an out-of-range octet is rejected", Lock{SourceIPs: []string{"203.0.113.300"}}, ErrInvalidSourceIP},
		{"an empty address is rejected", Lock{SourceIPs: []string{""}}, ErrInvalidSourceIP},
		{"an address with surrounding spaces is rejected", Lock{SourceIPs: []string{" 203.0.113.10"}}, ErrInvalidSourceIP},
		{"a CIDR with host bits set is rejected", Lock{SourceIPs: []string{"203.0.113.10/24"}}, ErrInvalidSourceIP},
		{"a private address is rejected", Lock{SourceIPs: []string{"10.0.1.23"}}, ErrInvalidSourceIP},
		{"a loopback address is rejected", Lock{SourceIPs: []string{"127.0.0.1"}}, ErrInvalidSourceIP},
		{"a zoned IPv6 address is rejected", Lock{SourceIPs: []string{"2001:db8::1%eth0"}}, ErrInvalidSourceIP},
		{"an IPv4-mapped IPv6 address is rejected", Lock{SourceIPs: []string{"::ffff:203.0.113.10"}}, ErrInvalidSourceIP},
		{"a short VPC id is rejected", Lock{VPCs: []string{"vpc-123"}}, ErrInvalidVPC},
		{"an uppercase VPC id is rejected", Lock{VPCs: []string{"vpc-0123456789ABCDEF0"}}, ErrInvalidVPC},
		{"a subnet id in place of a VPC id is rejected", Lock{VPCs: []string{"subnet-0123456789abcdef0"}}, ErrInvalidVPC},
		{"one bad VPC spoils an otherwise good lock", Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{"vpc-0123456789abcdef0", "vpc-xyz"}}, ErrInvalidVPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Render(tt.lock, Options{IsToken: isCDKToken})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Render error = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "lockpolicy: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if doc.Statement != nil {
				t.Errorf("Render returned statements along with an error: %+v", doc)
			}
		})
	}
}

func TestRenderReportsEveryInvalidValue(t *testing.T) {
	_, err := Render(Lock{SourceIPs: []string{"bad-1", "0.0.0.0/0"}, VPCs: []string{"vpc-bad"}}, Options{})
	for _, want := range []string{`"bad-1"`, `"0.0.0.0/0"`, `"vpc-bad"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Render error = %v, want it to mention %s", err, want)
		}
	}
}

func TestRenderCanonicalisesAddresses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"a bare IPv4 address becomes a /32", "203.0.113.10", "203.0.113.10/32"},
		{"a bare IPv6 address becomes a /128", "2001:DB8:0:0::10", "2001:db8::10/128"},
		{"an IPv4 CIDR is kept", "198.51.100.0/24", "198.51.100.0/24"},
		{"an IPv6 CIDR is lowercased and compressed", "2001:DB8:1234:0000::/56", "2001:db8:1234::/56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Render(Lock{SourceIPs: []string{tt.in}}, Options{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got := doc.Statement[0].Condition["NotIpAddress"]["aws:SourceIp"]; got != tt.want {
				t.Errorf("aws:SourceIp = %v, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderPassesTokensThrough(t *testing.T) {
	const ipToken, vpcToken = "${Token[TOKEN.123]}", "${Token[TOKEN.456]}"
	tests := []struct {
		name    string
		lock    Lock
		opts    Options
		want    []string
		wantErr error
	}{
		{"tokens are emitted verbatim and unvalidated",
			Lock{SourceIPs: []string{ipToken, "203.0.113.10"}, VPCs: []string{vpcToken}}, Options{IsToken: isCDKToken},
			[]string{`"aws:SourceIp":["${Token[TOKEN.123]}","203.0.113.10/32"]`, `"aws:SourceVpc":"${Token[TOKEN.456]}"`}, nil},
		{"a token-only lock renders",
			Lock{SourceIPs: []string{ipToken}}, Options{IsToken: isCDKToken},
			[]string{`"aws:SourceIp":"${Token[TOKEN.123]}"`}, nil},
		{"without IsToken a token is validated like any address",
			Lock{SourceIPs: []string{ipToken}}, Options{}, nil, ErrInvalidSourceIP},
		{"values that are not tokens are still validated",
			Lock{SourceIPs: []string{ipToken, "0.0.0.0/0"}}, Options{IsToken: isCDKToken}, nil, ErrInvalidSourceIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Render(tt.lock, tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Render error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := mustJSON(t, doc)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("JSON lacks %s:\n%s", w, got)
				}
			}
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	tests := []struct {
		name string
		a, b Lock
	}{
		{"order does not matter",
			Lock{SourceIPs: []string{"203.0.113.10", "198.51.100.7", "2001:db8::1"}, VPCs: []string{"vpc-0fedcba9876543210", "vpc-0123456789abcdef0"}},
			Lock{SourceIPs: []string{"2001:db8::1", "203.0.113.10", "198.51.100.7"}, VPCs: []string{"vpc-0123456789abcdef0", "vpc-0fedcba9876543210"}}},
		{"duplicates collapse, including a bare address and its /32",
			Lock{SourceIPs: []string{"203.0.113.10", "203.0.113.10/32", "203.0.113.10"}, VPCs: []string{"vpc-0123456789abcdef0", "vpc-0123456789abcdef0"}},
			Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{"vpc-0123456789abcdef0"}}},
		{"IPv6 spellings of one address collapse",
			Lock{SourceIPs: []string{"2001:DB8::1", "2001:db8:0:0:0:0:0:1/128"}},
			Lock{SourceIPs: []string{"2001:db8::1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			da, err := Render(tt.a, Options{})
			if err != nil {
				t.Fatalf("Render a: %v", err)
			}
			db, err := Render(tt.b, Options{})
			if err != nil {
				t.Fatalf("Render b: %v", err)
			}
			if ja, jb := mustJSON(t, da), mustJSON(t, db); ja != jb {
				t.Errorf("different documents:\n%s\n%s", ja, jb)
			}
		})
	}
}

func TestRenderDoesNotModifyItsInput(t *testing.T) {
	ips := []string{"203.0.113.20", "203.0.113.10"}
	if _, err := Render(Lock{SourceIPs: ips}, Options{}); err != nil {
		t.Fatalf("Render: %v", err)
	}
	if ips[0] != "203.0.113.20" {
		t.Errorf("Render reordered the caller's slice: %q", ips)
	}
}

func TestJSONNormalisesHandBuiltDocuments(t *testing.T) {
	doc := Document{Version: PolicyVersion, Statement: []Statement{deny("X", map[string]map[string]any{
		"StringNotEquals": {"aws:SourceVpc": []string{"vpc-b", "vpc-a", "vpc-b"}},
		"Null":            {"aws:SourceIp": []string{"true"}},
	})}}
	want := `{"Version":"2012-10-17","Statement":[{"Sid":"X","Effect":"Deny","Action":"*","Resource":"*",` +
		`"Condition":{"Null":{"aws:SourceIp":"true"},"StringNotEquals":{"aws:SourceVpc":["vpc-a","vpc-b"]}}}]}`
	if got := mustJSON(t, doc); got != want {
		t.Errorf("JSON =\n%s\nwant\n%s", got, want)
	}
}

func TestDocumentViews(t *testing.T) {
	locks := []struct {
		name string
		lock Lock
	}{
		{"a standard lock", Lock{SourceIPs: []string{"203.0.113.10", "2001:db8::1"}, VPCs: []string{"vpc-0123456789abcdef0"}}},
		{"an endpoints-only lock", Lock{VPCs: []string{"vpc-0123456789abcdef0", "vpc-0fedcba9876543210"}}},
		{"a public-only lock", Lock{SourceIPs: []string{"203.0.113.10"}}},
	}
	for _, tt := range locks {
		doc, err := Render(tt.lock, Options{})
		if err != nil {
			t.Fatalf("%s: Render: %v", tt.name, err)
		}
		compact := mustJSON(t, doc)
		t.Run("Size of "+tt.name+" is the length of its compact JSON", func(t *testing.T) {
			if got, want := doc.Size(), utf8.RuneCountInString(compact); got != want || got != len(compact) {
				t.Errorf("Size = %d, want %d", got, want)
			}
			if strings.ContainsAny(compact, " \n\t") {
				t.Errorf("JSON is not compact: %s", compact)
			}
		})
		t.Run("Map of "+tt.name+" carries the same document as its JSON", func(t *testing.T) {
			fromMap, err := json.Marshal(doc.Map())
			if err != nil {
				t.Fatalf("marshal Map: %v", err)
			}
			var a, b any
			if err := json.Unmarshal(fromMap, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(compact), &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("Map and JSON differ:\n%s\n%s", fromMap, compact)
			}
		})
	}
}

func TestLockForManyInstancesFitsTheRoleLimit(t *testing.T) {
	// The locker appends every instance's public IPv4 address to one lock.
	const instances = 400
	ips := make([]string, instances)
	for i := range ips {
		ips[i] = fmt.Sprintf("203.0.%d.%d", 113+i/250, 1+i%250)
	}
	doc, err := Render(Lock{SourceIPs: ips, VPCs: []string{"vpc-0123456789abcdef0"}}, Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if size := doc.Size(); size > MaxRolePolicySize {
		t.Errorf("a lock for %d instances is %d characters, over the %d limit", instances, size, MaxRolePolicySize)
	}
}

func FuzzRender(f *testing.F) {
	f.Add("203.0.113.10", "vpc-0123456789abcdef0")
	f.Add("0.0.0.0/0,::/0", "")
	f.Add("2001:db8::1/128,198.51.100.0/24", "vpc-01234567,vpc-0123456789abcdef0")
	f.Add("${Token[TOKEN.1]}", "${Token[TOKEN.2]}")
	f.Add("203.0.113.10/0", "vpc-")
	f.Fuzz(func(t *testing.T, ips, vpcs string) {
		lock := Lock{SourceIPs: splitNonEmpty(ips), VPCs: splitNonEmpty(vpcs)}
		doc, err := Render(lock, Options{IsToken: isCDKToken})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "lockpolicy: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		b, err := doc.JSON()
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		for _, s := range doc.Statement {
			for _, v := range sourceIPValues(s) {
				if strings.HasSuffix(v, "/0") && !isCDKToken(v) {
					t.Fatalf("lock allows a /0: %s", b)
				}
			}
		}
		if doc.Size() != utf8.RuneCount(b) {
			t.Fatalf("Size %d != %d", doc.Size(), utf8.RuneCount(b))
		}
	})
}

// splitNonEmpty splits a comma-separated fuzz input, keeping empty fields
// only when the input is not empty (so "" means "no values").
func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// sourceIPValues returns the aws:SourceIp values of a statement.
func sourceIPValues(s Statement) []string {
	switch v := s.Condition["NotIpAddress"]["aws:SourceIp"].(type) {
	case string:
		return []string{v}
	case []string:
		return v
	}
	return nil
}
