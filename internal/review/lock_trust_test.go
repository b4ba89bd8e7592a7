package review

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// tokenPrefix marks, in a lock rendered for a test template, a value that stands for a
// CloudFormation intrinsic (see lockTemplate).
const tokenPrefix = "TOKEN:"

// renderedLock renders l with lockpolicy.Render, the renderer the construct and the locker use,
// and replaces each token (a value tokenPrefix+name) by tokens[name].
func renderedLock(t *testing.T, l lockpolicy.Lock, tokens map[string]any) any {
	t.Helper()
	doc, err := lockpolicy.Render(l, lockpolicy.Options{IsToken: func(s string) bool { return strings.HasPrefix(s, tokenPrefix) }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var sub func(any) any
	sub = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = sub(e)
			}
		case []any:
			for i, e := range x {
				x[i] = sub(e)
			}
		case string:
			if name, ok := strings.CutPrefix(x, tokenPrefix); ok {
				return tokens[name]
			}
		}
		return v
	}
	return sub(v)
}

// TestALockRenderedWithTrustIsALock reviews locks that lockpolicy.Render wrote with the app's
// Trust (trusted egress prefixes join aws:SourceIp, shared endpoints are admitted by
// aws:SourceVpce) in every mode: each must still count as a lock (no DEF-LOCK finding), and the
// report must show the role's mode tag, the trusted egress prefixes and the shared endpoints.
func TestALockRenderedWithTrustIsALock(t *testing.T) {
	const vpc, prefix, vpce = "vpc-0123456789abcdef0", "198.51.100.0/24", "vpce-0123456789abcdef0"
	trust := lockpolicy.Trust{EgressPrefixes: []string{prefix}, SharedVPCEndpoints: []string{vpce}}
	rows := []struct {
		name  string
		id    string
		mode  lockpolicy.Mode
		lock  lockpolicy.Lock
		modes []string
	}{
		{"an instance-public-ip lock with trust", "PublicIP", lockpolicy.ModeInstancePublicIP,
			lockpolicy.Lock{SourceIPs: []string{tokenPrefix + "ip"}, VPCs: []string{vpc}, Trust: trust}, []string{ModeInstanceIP, ModeTrustedEgress}},
		{"a vpc-endpoints-only lock with trust", "EndpointsOnly", lockpolicy.ModeVPCEndpointsOnly,
			lockpolicy.Lock{VPCs: []string{vpc}, Trust: trust}, []string{ModeEndpointsOnly, ModeTrustedEgress}},
		{"a lock whose only endpoints are shared ones", "SharedOnly", lockpolicy.ModeInstancePublicIP,
			lockpolicy.Lock{SourceIPs: []string{tokenPrefix + "ip"}, Trust: lockpolicy.Trust{SharedVPCEndpoints: []string{vpce}}}, []string{ModeInstanceIP}},
	}
	resources := map[string]any{}
	for _, r := range rows {
		ip := map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Fn::GetAtt": []any{r.id + "Instance", "PublicIp"}}, "/32"}}}
		resources[r.id+"Role"] = map[string]any{"Type": "AWS::IAM::Role", "Properties": map[string]any{
			"AssumeRolePolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
				"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}}},
			"Tags": []any{map[string]any{"Key": "Name", "Value": r.id}, map[string]any{"Key": LockModeTagKey, "Value": string(r.mode)}},
		}}
		resources[r.id+"Profile"] = map[string]any{"Type": "AWS::IAM::InstanceProfile", "Properties": map[string]any{
			"Roles": []any{map[string]any{"Ref": r.id + "Role"}}}}
		resources[r.id+"Instance"] = map[string]any{"Type": "AWS::EC2::Instance", "Properties": map[string]any{
			"ImageId": "ami-0123456789abcdef0", "IamInstanceProfile": map[string]any{"Ref": r.id + "Profile"},
			"MetadataOptions": map[string]any{"HttpTokens": "required"}}}
		md := map[string]any{}
		if len(r.lock.Trust.EgressPrefixes) > 0 {
			md["egressPrefixes"] = r.lock.Trust.EgressPrefixes
		}
		md["sharedVpcEndpoints"] = r.lock.Trust.SharedVPCEndpoints
		resources[r.id+"Lock"] = map[string]any{"Type": "AWS::IAM::Policy", "Metadata": map[string]any{TrustKey: md},
			"Properties": map[string]any{"PolicyName": contract.LockPolicyName, "Roles": []any{map[string]any{"Ref": r.id + "Role"}},
				"PolicyDocument": renderedLock(t, r.lock, map[string]any{"ip": ip})}}
	}
	b, err := json.Marshal(map[string]any{"Resources": resources})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trust.template.json")
	writeText(t, path, string(b))
	rep := reviewPath(t, path)
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			role := findRole(t, rep, r.id+"Role")
			if role.Lock.Status != LockLocked {
				t.Errorf("lock status %q, want %q (statements %v)", role.Lock.Status, LockLocked, role.Lock.Statements)
			}
			if got := slices.Concat(rulesOf(rep, r.id+"Role"), rulesOf(rep, r.id+"Lock")); len(got) > 0 {
				t.Errorf("findings %v", got)
			}
			if !slices.Equal(role.Lock.Modes, r.modes) {
				t.Errorf("modes %v, want %v", role.Lock.Modes, r.modes)
			}
			if role.LockModeTag != string(r.mode) {
				t.Errorf("LockModeTag %q, want %q", role.LockModeTag, r.mode)
			}
			if len(role.Lock.SharedVPCEndpoints) != 1 || role.Lock.SharedVPCEndpoints[0].Value != vpce {
				t.Errorf("SharedVPCEndpoints %+v, want %s", role.Lock.SharedVPCEndpoints, vpce)
			}
			var trusted []string
			for _, v := range role.Lock.SourceIPs {
				if v.Mode == ModeTrustedEgress {
					trusted = append(trusted, v.Value)
				}
			}
			if want := r.lock.Trust.EgressPrefixes; !slices.Equal(trusted, want) {
				t.Errorf("trusted egress prefixes %v, want %v (source IPs %+v)", trusted, want, role.Lock.SourceIPs)
			}
			for _, s := range []string{
				fmt.Sprintf("tag `%s`: `%s`", LockModeTagKey, r.mode),
				"shared endpoint `" + vpce + "`",
			} {
				if !strings.Contains(md.String(), s) {
					t.Errorf("the Markdown report lacks %q", s)
				}
			}
		})
	}
	t.Run("the Markdown report labels the trusted egress prefix", func(t *testing.T) {
		if !strings.Contains(md.String(), "IP `"+prefix+"` (trusted egress prefix") {
			t.Errorf("no labelled trusted egress prefix in:\n%s", md.String())
		}
	})
}
