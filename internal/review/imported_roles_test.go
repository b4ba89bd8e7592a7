package review

import (
	"slices"
	"strings"
	"testing"
)

func TestInstancesWhoseRoleIsDefinedElsewhereAreNeverSilent(t *testing.T) {
	rep := reviewPath(t, "testdata/templates/imported-roles.template.json")
	tests := []struct {
		name  string
		id    string
		rules []string
		says  string
	}{
		{"an IamInstanceProfile that is a literal name not in the template", "LiteralProfile", []string{RuleUnjudgedRole}, "its instance profile is `legacy-web-profile`, which is not defined in this assembly"},
		{"an IamInstanceProfile imported from another stack", "ImportedProfile", []string{RuleUnjudgedRole}, "imported from a stack outside this assembly (export `shared-InstanceProfileName`)"},
		{"an IamInstanceProfile given by a parameter", "ParameterProfile", []string{RuleUnjudgedRole}, "given by parameter `ProfileName`"},
		{"a profile holding a role by name, as CDK's Role.fromRoleArn synthesizes", "Host", []string{RuleUnjudgedRole}, "holds role `existing-app-role`, which is not defined in this assembly"},
		{"a profile whose role is the template's own by default but a parameter's on another path", "Bastion", []string{RuleUnjudgedRole}, "can hold role `${AlternativeRole}`"},
		{"a launch template naming a profile by ARN", "Fleet", []string{RuleUnjudgedRole}, "instance-profile/ops/ops-profile"},
		{"a profile ARN built with Fn::Sub around the template's own profile is judged", "SubArnInstance", []string{}, ""},
		{"an instance without a profile has no role to judge", "NoProfile", []string{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rulesOf(rep, tc.id); !slices.Equal(got, tc.rules) {
				t.Fatalf("findings %v, want %v", got, tc.rules)
			}
			if tc.says != "" {
				if m := messageOf(rep, RuleUnjudgedRole, tc.id); !strings.Contains(m, tc.says) {
					t.Errorf("message %q does not say %q", m, tc.says)
				}
			}
		})
	}
	t.Run("the conditional profile's own role is still judged and linked to the instance", func(t *testing.T) {
		role := findRole(t, rep, "OwnRole")
		if len(role.Instances) != 1 || role.Instances[0].LogicalID != "Bastion" {
			t.Errorf("OwnRole instances %+v", role.Instances)
		}
		if got := rulesOf(rep, "OwnRole"); !slices.Equal(got, []string{RuleUnlockedRole}) {
			t.Errorf("OwnRole findings %v", got)
		}
	})
	t.Run("a profile resolved through an ARN is linked to its role", func(t *testing.T) {
		role := findRole(t, rep, "KnownRole")
		if len(role.Instances) != 1 || role.Instances[0].LogicalID != "SubArnInstance" {
			t.Errorf("KnownRole instances %+v", role.Instances)
		}
	})
}
