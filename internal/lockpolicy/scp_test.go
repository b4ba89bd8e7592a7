package lockpolicy

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// scpAccounts returns n distinct exempt account ids.
func scpAccounts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	return out
}

// fullSCP uses every option: shared endpoint, RestrictInternet, an exempt
// account and the exemption tag.
var fullSCP = SCPOptions{
	Trust:            Trust{EgressPrefixes: []string{centralEgressPrefix}, SharedVPCEndpoints: []string{sharedEndpoint}},
	RestrictInternet: true,
	ExemptAccounts:   []string{exemptAccount},
	ExemptRoleTag:    exemptTag,
}

func mustSCP(t *testing.T, o SCPOptions) string {
	t.Helper()
	d, err := SCP(o)
	if err != nil {
		t.Fatalf("SCP: %v", err)
	}
	return mustJSON(t, d)
}

func TestSCPGolden(t *testing.T) {
	const guard = `"ArnNotLike":{"aws:PrincipalArn":"arn:*:iam::*:role/aws:ec2-infrastructure"},"BoolIfExists":{"aws:ViaAWSService":"false"},`
	tests := []struct {
		name string
		opts SCPOptions
		want string
	}{
		{"without options the SCP checks the VPC and the host of every endpoint call", SCPOptions{},
			`{"Version":"2012-10-17","Statement":[` +
				`{"Sid":"DenyInstanceCredentialsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{` + guard +
				`"Null":{"aws:SourceIp":"true","aws:SourceVpc":"false","ec2:SourceInstanceARN":"false"},` +
				`"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}"}}},` +
				`{"Sid":"DenyInstanceCredentialsFromOtherHosts","Effect":"Deny","Action":"*","Resource":"*","Condition":{` + guard +
				`"Null":{"aws:SourceIp":"true","aws:VpcSourceIp":"false","ec2:SourceInstanceARN":"false"},` +
				`"StringNotEquals":{"aws:Ec2InstanceSourcePrivateIPv4":"${aws:VpcSourceIp}"}}}]}`},
		{"with every option each statement carries every exemption", fullSCP,
			`{"Version":"2012-10-17","Statement":[` +
				`{"Sid":"DenyInstanceCredentialsFromOtherVpcs","Effect":"Deny","Action":"*","Resource":"*","Condition":{` + guard +
				`"Null":{"aws:SourceIp":"true","aws:SourceVpc":"false","ec2:SourceInstanceARN":"false"},` +
				`"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}","aws:PrincipalAccount":"444455556666",` +
				`"aws:PrincipalTag/defenders:scp-exempt":"true","aws:SourceVpce":"vpce-0bbbb2222cccc3333"}}},` +
				`{"Sid":"DenyInstanceCredentialsFromOtherHosts","Effect":"Deny","Action":"*","Resource":"*","Condition":{` + guard +
				`"Null":{"aws:SourceIp":"true","aws:VpcSourceIp":"false","ec2:SourceInstanceARN":"false"},` +
				`"StringNotEquals":{"aws:Ec2InstanceSourcePrivateIPv4":"${aws:VpcSourceIp}","aws:PrincipalAccount":"444455556666",` +
				`"aws:PrincipalTag/defenders:scp-exempt":"true"}}},` +
				`{"Sid":"DenyInstanceCredentialsFromOtherAddresses","Effect":"Deny","Action":"*","Resource":"*","Condition":{` + guard +
				`"NotIpAddress":{"aws:SourceIp":"192.0.2.128/28"},"Null":{"aws:SourceIp":"false","ec2:SourceInstanceARN":"false"},` +
				`"StringNotEquals":{"aws:PrincipalAccount":"444455556666","aws:PrincipalTag/defenders:scp-exempt":"true"}}}]}`},
		{"egress prefixes without RestrictInternet add nothing",
			SCPOptions{Trust: Trust{EgressPrefixes: []string{centralEgressPrefix}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = mustSCP(t, SCPOptions{})
			}
			if got := mustSCP(t, tt.opts); got != want {
				t.Errorf("SCP =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestSCPIsByteIdenticalForEqualOptions(t *testing.T) {
	a := SCPOptions{
		Trust: Trust{
			EgressPrefixes:     []string{"198.51.100.0/24", centralEgressPrefix, "198.51.100.0/24"},
			SharedVPCEndpoints: []string{otherSharedVPCEndpoint, sharedEndpoint},
		},
		RestrictInternet: true,
		ExemptAccounts:   []string{"999988887777", exemptAccount, "999988887777"},
		ExemptRoleTag:    exemptTag,
	}
	b := a
	b.Trust = Trust{
		EgressPrefixes:     []string{centralEgressPrefix, "198.51.100.0/24"},
		SharedVPCEndpoints: []string{sharedEndpoint, otherSharedVPCEndpoint},
	}
	b.ExemptAccounts = []string{exemptAccount, "999988887777"}
	first := mustSCP(t, a)
	for range 20 { // map iteration order varies between runs
		if got := mustSCP(t, a); got != first {
			t.Fatalf("two renders differ:\n%s\n%s", first, got)
		}
	}
	if got := mustSCP(t, b); got != first {
		t.Errorf("reordered and deduplicated options render differently:\n%s\n%s", first, got)
	}
	if !strings.Contains(first, `"aws:PrincipalAccount":["444455556666","999988887777"]`) {
		t.Errorf("exempt accounts are not a sorted, deduplicated list: %s", first)
	}
}

// TestSCPStatementsAreTheLocks checks that the SCP is the lock's statements
// scoped to instance credentials and exemptions, not a second rendering of
// IAM: strip what scpScoped adds and each SCP statement is the lock's
// counterpart, condition for condition.
func TestSCPStatementsAreTheLocks(t *testing.T) {
	trust := Trust{EgressPrefixes: []string{centralEgressPrefix}, SharedVPCEndpoints: []string{sharedEndpoint}}
	lock, err := Render(Lock{VPCs: []string{instanceVPC}, Trust: trust}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		trust Trust
	}{{"with shared endpoints", trust}, {"without shared endpoints", Trust{EgressPrefixes: trust.EgressPrefixes}}} {
		t.Run(tt.name, func(t *testing.T) {
			lock := lock
			if len(tt.trust.SharedVPCEndpoints) == 0 {
				lock, err = Render(Lock{VPCs: []string{instanceVPC}, Trust: tt.trust}, Options{})
				if err != nil {
					t.Fatal(err)
				}
			}
			scp, err := SCP(SCPOptions{Trust: tt.trust, RestrictInternet: true, ExemptAccounts: []string{exemptAccount}, ExemptRoleTag: exemptTag})
			if err != nil {
				t.Fatal(err)
			}
			counterpart := map[string]string{
				SidSCPDenyEndpointCallsFromOtherVpcs:    SidDenyEndpointCallsFromOutsideTheInstanceVpc,
				SidSCPDenyEndpointCallsFromOtherHosts:   SidDenyEndpointCallsFromOtherHosts,
				SidSCPDenyPublicCallsFromOtherAddresses: SidDenyPublicCallsFromOtherAddresses,
			}
			if len(scp.Statement) != len(counterpart) {
				t.Fatalf("SCP has %d statements, want %d", len(scp.Statement), len(counterpart))
			}
			for _, s := range scp.Statement {
				want, ok := statementBySid(lock, counterpart[s.Sid])
				if !ok {
					t.Fatalf("SCP statement %s: the lock has no %s", s.Sid, counterpart[s.Sid])
				}
				if s.Effect != "Deny" || s.Action != "*" || s.Resource != "*" {
					t.Errorf("%s: %s %v on %s, want Deny * on *", s.Sid, s.Effect, s.Action, s.Resource)
				}
				got := unscoped(t, s.Condition)
				if !reflect.DeepEqual(got, want.Condition) {
					t.Errorf("%s without the SCP's scope = %v\nwant the lock's %s: %v", s.Sid, got, want.Sid, want.Condition)
				}
			}
		})
	}
}

// unscoped returns a copy of an SCP statement's conditions without what
// scpScoped adds, checking that it added all of it.
func unscoped(t *testing.T, cond map[string]map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for op, kv := range cond {
		m := map[string]any{}
		for k, v := range kv {
			m[k] = v
		}
		out[op] = m
	}
	if out["Null"]["ec2:SourceInstanceARN"] != "false" {
		t.Errorf("conditions %v lack Null ec2:SourceInstanceARN false", cond)
	}
	if out["ArnNotLike"]["aws:PrincipalArn"] != ec2InfrastructureRoleARN {
		t.Errorf("conditions %v do not spare %s", cond, ec2InfrastructureRoleARN)
	}
	if out["StringNotEquals"]["aws:PrincipalAccount"] != exemptAccount || out["StringNotEquals"]["aws:PrincipalTag/"+exemptTag] != "true" {
		t.Errorf("conditions %v lack an exemption", cond)
	}
	delete(out["Null"], "ec2:SourceInstanceARN")
	delete(out, "ArnNotLike")
	delete(out["StringNotEquals"], "aws:PrincipalAccount")
	delete(out["StringNotEquals"], "aws:PrincipalTag/"+exemptTag)
	if len(out["StringNotEquals"]) == 0 {
		delete(out, "StringNotEquals")
	}
	return out
}

func statementBySid(d Document, sid string) (Statement, bool) {
	for _, s := range d.Statement {
		if s.Sid == sid {
			return s, true
		}
	}
	return Statement{}, false
}

func TestSCPRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    SCPOptions
		want    error
		mention string
	}{
		{"an exempt account that is not 12 digits is rejected", SCPOptions{ExemptAccounts: []string{"12345678901"}}, ErrInvalidAccountID, `"12345678901"`},
		{"an exempt account with letters is rejected", SCPOptions{ExemptAccounts: []string{"12345678901a"}}, ErrInvalidAccountID, `"12345678901a"`},
		{"an exempt account ARN is rejected", SCPOptions{ExemptAccounts: []string{"arn:aws:iam::444455556666:root"}}, ErrInvalidAccountID, "12 digits"},
		{"an exempt tag key with a space is rejected", SCPOptions{ExemptRoleTag: "scp exempt"}, ErrInvalidTagKey, `"scp exempt"`},
		{"an exempt tag key with a quote is rejected", SCPOptions{ExemptRoleTag: `x"y`}, ErrInvalidTagKey, "letters, digits"},
		{"an exempt tag key in the aws: namespace is rejected", SCPOptions{ExemptRoleTag: "AWS:exempt"}, ErrInvalidTagKey, "reserved"},
		{"an exempt tag key over 128 characters is rejected", SCPOptions{ExemptRoleTag: strings.Repeat("k", 129)}, ErrInvalidTagKey, "128"},
		{"RestrictInternet without egress prefixes is rejected", SCPOptions{RestrictInternet: true}, ErrNoEgressPrefixes,
			"would deny every internet call made with EC2 instance credentials in every account"},
		{"a malformed shared endpoint is rejected", SCPOptions{Trust: Trust{SharedVPCEndpoints: []string{"vpc-0123456789abcdef0"}}},
			ErrInvalidVPCEndpoint, "vpc-0123456789abcdef0"},
		{"a private egress prefix is rejected", SCPOptions{RestrictInternet: true, Trust: Trust{EgressPrefixes: []string{"10.0.0.0/16"}}},
			ErrInvalidSourceIP, "10.0.0.0/16"},
		{"a too wide egress prefix is rejected", SCPOptions{RestrictInternet: true, Trust: Trust{EgressPrefixes: []string{"8.0.0.0/8"}}},
			ErrInvalidSourceIP, "wider than /16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SCP(tt.opts)
			if !errors.Is(err, tt.want) || !strings.HasPrefix(err.Error(), "lockpolicy: ") || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("SCP error = %v, want %v mentioning %q", err, tt.want, tt.mention)
			}
		})
	}
	t.Run("every bad value is named at once", func(t *testing.T) {
		_, err := SCP(SCPOptions{ExemptAccounts: []string{"1", "2"}, ExemptRoleTag: "a b"})
		for _, want := range []string{`"1"`, `"2"`, `"a b"`} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("SCP error = %v, want it to name %s", err, want)
			}
		}
	})
}

// TestSCPSizes pins the size of the SCP in the common cases, as AWS
// Organizations counts it, and how many exempt accounts fit.
func TestSCPSizes(t *testing.T) {
	tests := []struct {
		name string
		opts SCPOptions
		want int
	}{
		{"the bare SCP", SCPOptions{}, 811},
		{"with a shared endpoint", SCPOptions{Trust: Trust{SharedVPCEndpoints: []string{sharedEndpoint}}}, 853},
		{"with every option", fullSCP, 1473},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SCPSizeOf([]byte(mustSCP(t, tt.opts)))
			if got != tt.want {
				t.Errorf("size = %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("whitespace counts", func(t *testing.T) {
		if got := SCPSizeOf([]byte(`{ "a" : 1 }`)); got != 11 {
			t.Errorf("SCPSizeOf = %d, want 11", got)
		}
	})
}

var fitPattern = regexp.MustCompile(`at most (\d+) of the (\d+) exempt accounts fit`)

func TestSCPRefusesToExceedTheQuota(t *testing.T) {
	for _, base := range []struct {
		name string
		opts SCPOptions
	}{{"bare", SCPOptions{}}, {"every option", fullSCP}} {
		t.Run("with "+base.name+" options the error says how many exempt accounts fit", func(t *testing.T) {
			o := base.opts
			o.ExemptAccounts = scpAccounts(400)
			_, err := SCP(o)
			if !errors.Is(err, ErrSCPTooLarge) {
				t.Fatalf("SCP error = %v, want ErrSCPTooLarge", err)
			}
			m := fitPattern.FindStringSubmatch(err.Error())
			if m == nil || m[2] != "400" || !strings.Contains(err.Error(), "not attaching the SCP") {
				t.Fatalf("SCP error = %v, want how many of the 400 exempt accounts fit and what to do instead", err)
			}
			fit, _ := strconv.Atoi(m[1])
			o.ExemptAccounts = scpAccounts(fit)
			d, err := SCP(o)
			if err != nil {
				t.Fatalf("with the %d accounts said to fit: %v", fit, err)
			}
			if n := SCPSizeOf([]byte(mustJSON(t, d))); n > MaxSCPSize {
				t.Fatalf("with %d accounts: %d characters", fit, n)
			}
			o.ExemptAccounts = scpAccounts(fit + 1)
			if _, err := SCP(o); !errors.Is(err, ErrSCPTooLarge) {
				t.Fatalf("with one more account than said to fit (%d): error %v, want ErrSCPTooLarge", fit+1, err)
			}
			t.Logf("%s: %d exempt accounts fit", base.name, fit)
		})
	}
	t.Run("without room even for no exempt account the error says what to shorten", func(t *testing.T) {
		endpoints := make([]string, 250)
		for i := range endpoints {
			endpoints[i] = fmt.Sprintf("vpce-%017x", i)
		}
		_, err := SCP(SCPOptions{Trust: Trust{SharedVPCEndpoints: endpoints}, ExemptAccounts: []string{exemptAccount}})
		if !errors.Is(err, ErrSCPTooLarge) || !strings.Contains(err.Error(), "even without exempt accounts") {
			t.Fatalf("SCP error = %v, want ErrSCPTooLarge even without exempt accounts", err)
		}
	})
}
