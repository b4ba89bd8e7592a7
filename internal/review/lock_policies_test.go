package review

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEveryWayOfAttachingAPolicyCountsForTheLock(t *testing.T) {
	rep := reviewPath(t, "testdata/templates/lock-policies.template.json")
	tests := []struct {
		name   string
		role   string
		status string
		rules  []string // findings naming the role
	}{
		{"an AWS::IAM::Policy whose PolicyDocument is a JSON string", "StringPolicyRole", LockLocked, []string{}},
		{"a trust policy written as a JSON string still makes an EC2 role", "StringTrustRole", LockLocked, []string{}},
		{"an AWS::IAM::ManagedPolicy that names the role in Roles (the IAM User Guide's deny-by-source-IP policy)", "ManagedByRolesRole", LockLocked, []string{}},
		{"a customer managed policy in ManagedPolicyArns through a Ref", "ManagedByArnRole", LockLocked, []string{}},
		{"a customer managed policy in ManagedPolicyArns through its ARN written with Fn::Sub", "ManagedByNameRole", LockLocked, []string{}},
		{"an inline policy of the role given as a JSON string", "InlineRole", LockLocked, []string{}},
		{"an AWS::IAM::RolePolicy naming the role", "RolePolicyRole", LockLocked, []string{}},
		{"an Fn::Sub JSON string whose placeholder is the instance's own address", "SubRole", LockLocked, []string{}},
		{"a Deny of s3:* on a bucket unless aws:SourceVpc is not a lock", "S3VpcOnlyRole", LockUnlocked, []string{RuleUnlockedRole}},
		{"a Deny narrowed by a condition outside the lock's keys (a region) is not a lock", "RegionScopedRole", LockUnlocked, []string{RuleUnlockedRole}},
		{"a role whose only Deny is on endpoint calls is partial", "EndpointOnlyRole", LockPartial, []string{RuleLockMissesInternet}},
		{"NotAction of single named actions still denies every other action", "NotActionRole", LockLocked, []string{}},
		{"NotAction with a wildcard leaves a whole service open: not a lock statement", "NotActionWildcardRole", LockPartial, []string{RuleLockMissesInternet}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := findRole(t, rep, tc.role)
			if r.Lock.Status != tc.status {
				t.Errorf("lock status %q, want %q (statements %v)", r.Lock.Status, tc.status, r.Lock.Statements)
			}
			if got := rulesOf(rep, tc.role); !slices.Equal(got, tc.rules) {
				t.Errorf("findings %v, want %v", got, tc.rules)
			}
		})
	}
	t.Run("NotAction exceptions are reported as callable from anywhere", func(t *testing.T) {
		if got := findRole(t, rep, "NotActionRole").Lock.ExceptActions; !slices.Equal(got, []string{"sts:GetCallerIdentity"}) {
			t.Errorf("ExceptActions = %v", got)
		}
	})
	t.Run("the policies holding the lock are named", func(t *testing.T) {
		for role, want := range map[string]string{
			"ManagedByRolesRole": "lock-policies/ManagedByRoles", "ManagedByArnRole": "lock-policies/ManagedByArn",
			"InlineRole": "lock-policies/InlineRole inline policy lock", "RolePolicyRole": "lock-policies/RolePolicyLock",
		} {
			if got := findRole(t, rep, role).Lock.Policies; !slices.Contains(got, want) {
				t.Errorf("%s: policies %v lack %q", role, got, want)
			}
		}
	})
	t.Run("a JSON-string lock traces its address to the instance", func(t *testing.T) {
		ips := findRole(t, rep, "SubRole").Lock.SourceIPs
		if len(ips) != 1 || ips[0].Mode != ModeInstanceIP || !strings.Contains(ips[0].RefersTo, "lock-policies/SubInstance") {
			t.Errorf("source IPs %+v", ips)
		}
	})
	t.Run("a managed policy that admits another instance's address crosses the lock", func(t *testing.T) {
		if got := rulesOf(rep, "CrossedLock"); !slices.Equal(got, []string{RuleCrossedLock}) {
			t.Errorf("findings of CrossedLock %v", got)
		}
	})
}

func TestPolicyDocumentsGivenAsStringsAreValidated(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"a string that is not JSON", `"Statement: Deny everything"`, "a string that is not a JSON policy document"},
		{"a JSON string whose statement lacks an Effect", `"{\"Statement\": [{\"Action\": \"*\", \"Resource\": \"*\"}]}"`, "Properties.PolicyDocument.Statement[0].Effect: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.template.json")
			writeText(t, path, `{"Resources": {"P": {"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "p", "Roles": ["r"], "PolicyDocument": `+tc.doc+`}}}}`)
			_, err := Review(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestActionPatterns(t *testing.T) {
	for _, tc := range []struct {
		p, a string
		want bool
	}{
		{"sts:AssumeRole", "sts:AssumeRole", true},
		{"STS:assumerole", "sts:AssumeRole", true},
		{"sts:*", "sts:AssumeRole", true},
		{"*", "sts:AssumeRole", true},
		{"sts:Assume*", "sts:AssumeRole", true},
		{"sts:AssumeRole*", "sts:AssumeRole", true},
		{"sts:Assume?ole", "sts:AssumeRole", true},
		{"sts:AssumeRoleWithSAML", "sts:AssumeRole", false},
		{"s3:*", "sts:AssumeRole", false},
		{"*:Get*", "sts:AssumeRole", false},
	} {
		if got := actionMatches(tc.p, tc.a); got != tc.want {
			t.Errorf("actionMatches(%q, %q) = %v", tc.p, tc.a, got)
		}
	}
}
