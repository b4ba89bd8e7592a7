package shadow

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestFromRecord checks the request context built from records, key by key.
func TestFromRecord(t *testing.T) {
	instanceARN := "arn:aws:ec2:" + region + ":" + account + ":instance/" + instanceID
	roleARN := "arn:aws:iam::" + account + ":role/" + role
	creds := map[string]any{
		"aws:Ec2InstanceSourceVpc": instanceVPC, "aws:Ec2InstanceSourcePrivateIPv4": privateIP, "ec2:SourceInstanceARN": instanceARN,
		"aws:PrincipalAccount": account, "aws:PrincipalArn": roleARN,
	}
	with := func(m map[string]any) map[string]any {
		out := maps.Clone(creds)
		maps.Copy(out, m)
		return out
	}
	tests := []struct {
		name    string
		c       call
		inst    Instance
		o       Options
		want    map[string]any
		unknown []string
	}{
		{"an internet call carries aws:SourceIp", call{src: publicIP}, theInstance, Options{PrincipalTagsKnown: true},
			with(map[string]any{"aws:SourceIp": publicIP, "aws:ViaAWSService": "false"}), nil},
		{"an IPv6 call carries the canonical address", call{src: "2001:DB8:1234:0::10"}, theInstance, Options{PrincipalTagsKnown: true},
			with(map[string]any{"aws:SourceIp": instanceIPv6, "aws:ViaAWSService": "false"}), nil},
		{"an endpoint call carries the endpoint, its VPC and the VPC source address", call{src: privateIP, vpce: endpointID}, theInstance,
			Options{EndpointVPCs: endpoints, PrincipalTagsKnown: true},
			with(map[string]any{"aws:SourceVpce": endpointID, "aws:SourceVpc": instanceVPC, "aws:VpcSourceIp": privateIP, "aws:ViaAWSService": "false"}), nil},
		{"the VPC of an unmapped endpoint is unknown", call{src: privateIP, vpce: unmappedVPCE}, theInstance,
			Options{EndpointVPCs: endpoints, PrincipalTagsKnown: true},
			with(map[string]any{"aws:SourceVpce": unmappedVPCE, "aws:VpcSourceIp": privateIP, "aws:ViaAWSService": "false"}), []string{"aws:SourceVpc"}},
		{"a service acting for the instance is via an AWS service, from an unknown address", call{src: "ec2.amazonaws.com", invokedBy: "ec2.amazonaws.com"},
			theInstance, Options{PrincipalTagsKnown: true},
			with(map[string]any{"aws:ViaAWSService": "true"}), []string{"aws:SourceIp"}},
		{"a service name without invokedBy is a service too", call{src: "ssm.amazonaws.com"}, theInstance, Options{PrincipalTagsKnown: true},
			with(map[string]any{"aws:ViaAWSService": "true"}), []string{"aws:SourceIp"}},
		{"AWS Internal tells nothing", call{src: "AWS Internal"}, theInstance, Options{PrincipalTagsKnown: true},
			creds, []string{"aws:SourceIp", "aws:ViaAWSService"}},
		{"the inventory's gaps are unknown", call{src: publicIP}, Instance{}, Options{},
			map[string]any{"aws:SourceIp": publicIP, "aws:ViaAWSService": "false", "aws:PrincipalAccount": account, "aws:PrincipalArn": roleARN},
			[]string{"aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "ec2:SourceInstanceARN", "aws:PrincipalTag/*"}},
		{"a session named like an instance without ec2RoleDelivery may not be an instance's", call{src: publicIP, delivery: "-"}, theInstance,
			Options{PrincipalTagsKnown: true},
			map[string]any{"aws:SourceIp": publicIP, "aws:ViaAWSService": "false", "aws:PrincipalAccount": account, "aws:PrincipalArn": roleARN},
			[]string{"aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4", "ec2:SourceInstanceARN"}},
		{"a Lambda function's session lacks the instance keys", call{session: "my-function", src: attackerIP}, theInstance, Options{PrincipalTagsKnown: true},
			map[string]any{"aws:SourceIp": attackerIP, "aws:ViaAWSService": "false", "aws:PrincipalAccount": account, "aws:PrincipalArn": roleARN}, nil},
		{"a service acting with a session that is not an instance's may use its own", call{session: "config-session", src: "config.amazonaws.com", invokedBy: "config.amazonaws.com"},
			theInstance, Options{PrincipalTagsKnown: true},
			map[string]any{"aws:PrincipalAccount": account, "aws:PrincipalArn": roleARN}, []string{"aws:SourceIp", "aws:ViaAWSService"}},
		{"an IAM user's ARN is the principal ARN", call{iamUser: "ci", src: attackerIP}, theInstance,
			Options{PrincipalTagsKnown: true, PrincipalTags: map[string]string{"team": "blue"}},
			map[string]any{"aws:SourceIp": attackerIP, "aws:ViaAWSService": "false", "aws:PrincipalAccount": account,
				"aws:PrincipalArn": "arn:aws:iam::" + account + ":user/ci", "aws:PrincipalTag/team": "blue"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.c.record(t)
			r, err := FromRecord(&rec, tt.inst, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Context(); !maps.Equal(got, tt.want) {
				t.Errorf("context\n got %v\nwant %v", got, tt.want)
			}
			var unknown []string
			for _, u := range r.Unknown() {
				if u.Reason == "" {
					t.Errorf("%s is unknown without a reason", u.Key)
				}
				unknown = append(unknown, u.Key)
			}
			if !slices.Equal(slices.Sorted(slices.Values(unknown)), slices.Sorted(slices.Values(tt.unknown))) {
				t.Errorf("unknown %v, want %v", r.Unknown(), tt.unknown)
			}
		})
	}
}

// TestUnmappedEndpointIsUndetermined checks the verdict's reason names the
// endpoint to map.
func TestUnmappedEndpointIsUndetermined(t *testing.T) {
	p := compile(t, render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}}))
	rec := call{src: privateIP, vpce: unmappedVPCE}.record(t)
	r, err := FromRecord(&rec, theInstance, Options{EndpointVPCs: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	v := p.Evaluate(&r)
	if v.Decision != Undetermined {
		t.Fatalf("decision %v, want undetermined", v.Decision)
	}
	for _, u := range v.Unknown {
		if u.Key != "aws:SourceVpc" || !strings.Contains(u.Reason, unmappedVPCE) {
			t.Errorf("unknown %v, want aws:SourceVpc naming %s", u, unmappedVPCE)
		}
	}
}

// TestMalformedRecords checks that records a request cannot be built from
// are errors, and that a Report counts them as errors, never as calls.
func TestMalformedRecords(t *testing.T) {
	good := call{src: publicIP}
	tests := []struct {
		name string
		edit func(*cloudtrail.Record)
		inst Instance
		o    Options
		is   error
		says string
	}{
		{"no account", func(r *cloudtrail.Record) { r.UserIdentity.AccountID = "" }, theInstance, Options{}, ErrMalformedRecord, "accountId"},
		{"an account that is not 12 digits", func(r *cloudtrail.Record) { r.UserIdentity.AccountID = "1111222233x3" }, theInstance, Options{}, ErrMalformedRecord, "accountId"},
		{"no identity type", func(r *cloudtrail.Record) { r.UserIdentity.Type = "" }, theInstance, Options{}, ErrMalformedRecord, "type"},
		{"no principal ARN", func(r *cloudtrail.Record) { r.UserIdentity.ARN = "" }, theInstance, Options{}, ErrMalformedRecord, "userIdentity.arn"},
		{"no session issuer", func(r *cloudtrail.Record) { r.UserIdentity.SessionContext.SessionIssuer.ARN = "" }, theInstance, Options{}, ErrMalformedRecord, "sessionIssuer.arn"},
		{"an assumed-role ARN without a session", func(r *cloudtrail.Record) { r.UserIdentity.ARN = "arn:aws:sts::111122223333:assumed-role/x" }, theInstance, Options{}, ErrMalformedRecord, "ROLE/SESSION"},
		{"a huge issuer ARN", func(r *cloudtrail.Record) {
			r.UserIdentity.SessionContext.SessionIssuer.ARN = "arn:aws:iam::111122223333:role/" + strings.Repeat("x", 1<<20)
		}, theInstance, Options{}, ErrMalformedRecord, "more than any ARN"},
		{"an AWS service principal", func(r *cloudtrail.Record) {
			r.UserIdentity = cloudtrail.UserIdentity{Type: "AWSService", AccountID: account, InvokedBy: "cloudtrail.amazonaws.com"}
		}, theInstance, Options{}, ErrNoPrincipal, "AWSService"},
		{"no source address", func(r *cloudtrail.Record) { r.SourceIPAddress = "" }, theInstance, Options{}, ErrMalformedRecord, "sourceIPAddress"},
		{"a source that is neither an address nor a service", func(r *cloudtrail.Record) { r.SourceIPAddress = "evil.example.com" }, theInstance, Options{}, ErrMalformedRecord, "evil.example.com"},
		{"a zoned source address", func(r *cloudtrail.Record) { r.SourceIPAddress = "fe80::1%eth0" }, theInstance, Options{}, ErrMalformedRecord, "sourceIPAddress"},
		{"a malformed endpoint id", func(r *cloudtrail.Record) { r.VPCEndpointID = "vpce-<script>" }, theInstance, Options{}, ErrMalformedRecord, "vpcEndpointId"},
		{"an instance VPC that is not a VPC id", func(*cloudtrail.Record) {}, Instance{VPC: "vpc-x"}, Options{}, ErrInvalidRequest, "Instance.VPC"},
		{"an instance address that is not IPv4", func(*cloudtrail.Record) {}, Instance{PrivateIPv4: instanceIPv6}, Options{}, ErrInvalidRequest, "Instance.PrivateIPv4"},
		{"an endpoint mapped to something else than a VPC", func(r *cloudtrail.Record) { r.VPCEndpointID = endpointID },
			theInstance, Options{EndpointVPCs: map[string]string{endpointID: "sg-123"}}, ErrInvalidRequest, "EndpointVPCs"},
	}
	lock := compile(t, render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}}))
	report := NewReport(ReportOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := good.record(t)
			tt.edit(&rec)
			r, err := FromRecord(&rec, tt.inst, tt.o)
			if err == nil {
				t.Fatalf("FromRecord succeeded: %v", lock.Evaluate(&r).Decision)
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q, want %v saying %q", err, tt.is, tt.says)
			}
			if len(err.Error()) > 1024 {
				t.Errorf("the error is %d bytes long", len(err.Error()))
			}
			report.AddError(&rec, err)
			// A caller that ignores the error and reports the zero verdict
			// still does not count an allowed call.
			report.Add(&rec, Verdict{})
		})
	}
	if _, err := FromRecord(nil, theInstance, Options{}); !errors.Is(err, ErrMalformedRecord) {
		t.Errorf("a nil record: %v", err)
	}
	s := report.Summary()
	if s.Calls != 0 || s.Errors != int64(2*len(tests)) {
		t.Errorf("the report counts %d calls and %d errors, want 0 and %d", s.Calls, s.Errors, 2*len(tests))
	}
	// Records parsed from broken JSON never get that far.
	for _, raw := range []string{``, `{`, `[]`, `{"userIdentity":"x"}`, `{"sourceIPAddress":1}`} {
		if _, err := cloudtrail.ParseRecord([]byte(raw)); err == nil {
			t.Errorf("ParseRecord(%q) succeeded", raw)
		}
	}
}

// TestNewRequestRefuses checks the "what if" constructor.
func TestNewRequestRefuses(t *testing.T) {
	for name, ctx := range map[string]map[string]any{
		"an unknown key":          {"aws:RequestedRegion": "us-east-1"},
		"a list value":            {"aws:SourceVpc": []string{"vpc-1", "vpc-2"}},
		"an address that is not":  {"aws:SourceIp": "not-an-ip"},
		"a Bool that is not":      {"aws:ViaAWSService": "yes"},
		"one key in two spelling": {"aws:SourceVpc": "vpc-1", "AWS:SOURCEVPC": "vpc-2"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewRequest(ctx); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("NewRequest: %v, want ErrInvalidRequest", err)
			}
		})
	}
}

// TestIDShapes keeps the id checks equal to lockpolicy's.
func TestIDShapes(t *testing.T) {
	for _, s := range []string{"vpc-12345678", "vpc-1234567", "vpc-0123456789abcdef0", "vpc-0123456789abcdef01", "vpc-0123456789ABCDEF0",
		"vpce-0aaaabbbbccccdddd", "vpce-0aaaabbbbccccddddd", "vpce-1234567", "vpce-12345678", "vpc-", "vpce-", "", "vpc-1234567g", "xvpc-12345678"} {
		if got, want := isVPCID(s), lockpolicy.IsVPCID(s); got != want {
			t.Errorf("isVPCID(%q) = %v, lockpolicy says %v", s, got, want)
		}
		if got, want := isVPCEndpointID(s), lockpolicy.IsVPCEndpointID(s); got != want {
			t.Errorf("isVPCEndpointID(%q) = %v, lockpolicy says %v", s, got, want)
		}
	}
}
