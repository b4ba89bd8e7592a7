package lockpolicy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TestSessionPolicyGolden pins the session policy to the documents the
// lockdown package rendered with its own types before it moved here.
func TestSessionPolicyGolden(t *testing.T) {
	tests := []struct {
		name string
		addr string
		vpcs []string
		want string
	}{
		{name: "one address without VPCs", addr: "203.0.113.10/32", vpcs: nil,
			want: `{"Version":"2012-10-17","Statement":[{"Sid":"AllowWhatTheRoleAllows","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"DenyPublicCallsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"NotIpAddress":{"aws:SourceIp":"203.0.113.10/32"},"Null":{"aws:SourceIp":"false"}}},{"Sid":"DenyEndpointCallsFromAnyVpc","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"}}},{"Sid":"DenySheddingTheLock","Effect":"Deny","Action":["sts:AssumeRole","sts:AssumeRoleWithSAML","sts:AssumeRoleWithWebIdentity","sts:GetFederationToken","sts:GetSessionToken"],"Resource":"*"}]}`},
		{name: "one address and one VPC", addr: "203.0.113.10/32", vpcs: []string{"vpc-0123456789abcdef0"},
			want: `{"Version":"2012-10-17","Statement":[{"Sid":"AllowWhatTheRoleAllows","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"DenyPublicCallsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"NotIpAddress":{"aws:SourceIp":"203.0.113.10/32"},"Null":{"aws:SourceIp":"false"}}},{"Sid":"DenyEndpointCallsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"},"StringNotEquals":{"aws:SourceVpc":"vpc-0123456789abcdef0"}}},{"Sid":"DenySheddingTheLock","Effect":"Deny","Action":["sts:AssumeRole","sts:AssumeRoleWithSAML","sts:AssumeRoleWithWebIdentity","sts:GetFederationToken","sts:GetSessionToken"],"Resource":"*"}]}`},
		{name: "an IPv6 address and duplicate VPCs", addr: "2001:db8::1/128", vpcs: []string{"vpc-0fedcba9876543210", "vpc-0123456789abcdef0", "vpc-0123456789abcdef0"},
			want: `{"Version":"2012-10-17","Statement":[{"Sid":"AllowWhatTheRoleAllows","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"DenyPublicCallsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"NotIpAddress":{"aws:SourceIp":"2001:db8::1/128"},"Null":{"aws:SourceIp":"false"}}},{"Sid":"DenyEndpointCallsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"},"StringNotEquals":{"aws:SourceVpc":["vpc-0123456789abcdef0","vpc-0fedcba9876543210"]}}},{"Sid":"DenySheddingTheLock","Effect":"Deny","Action":["sts:AssumeRole","sts:AssumeRoleWithSAML","sts:AssumeRoleWithWebIdentity","sts:GetFederationToken","sts:GetSessionToken"],"Resource":"*"}]}`},
		{name: "a prefix and an old-style VPC id", addr: "203.0.113.0/24", vpcs: []string{"vpc-01234567"},
			want: `{"Version":"2012-10-17","Statement":[{"Sid":"AllowWhatTheRoleAllows","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"DenyPublicCallsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"},"Null":{"aws:SourceIp":"false"}}},{"Sid":"DenyEndpointCallsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":"false"},"Null":{"aws:SourceIp":"true"},"StringNotEquals":{"aws:SourceVpc":"vpc-01234567"}}},{"Sid":"DenySheddingTheLock","Effect":"Deny","Action":["sts:AssumeRole","sts:AssumeRoleWithSAML","sts:AssumeRoleWithWebIdentity","sts:GetFederationToken","sts:GetSessionToken"],"Resource":"*"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := SessionPolicy(netip.MustParsePrefix(tt.addr), tt.vpcs)
			if err != nil {
				t.Fatalf("SessionPolicy: %v", err)
			}
			if got := mustJSON(t, doc); got != tt.want {
				t.Errorf("JSON =\n%s\nwant\n%s", got, tt.want)
			}
			if doc.Size() > MaxSessionPolicySize {
				t.Errorf("size %d over %d", doc.Size(), MaxSessionPolicySize)
			}
		})
	}
}

func TestSessionPolicyRejects(t *testing.T) {
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("vpc-%017x", i)
	}
	tests := []struct {
		name string
		addr netip.Prefix
		vpcs []string
		want string
	}{
		{name: "no address", want: "no address"},
		{name: "a private address", addr: netip.MustParsePrefix("10.0.0.5/32"), want: "not a public address"},
		{name: "a carrier-grade NAT address", addr: netip.MustParsePrefix("100.64.0.1/32"), want: "not a public address"},
		{name: "the whole internet", addr: netip.MustParsePrefix("0.0.0.0/0"), want: "not a public address"},
		{name: "a malformed VPC id", addr: netip.MustParsePrefix("203.0.113.10/32"), vpcs: []string{"vpc-XYZ"}, want: "not a VPC id"},
		{name: "too many VPCs for STS", addr: netip.MustParsePrefix("203.0.113.10/32"), vpcs: many, want: "STS allows 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			_, err := SessionPolicy(tt.addr, tt.vpcs)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "lockpolicy: session policy: ") {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
