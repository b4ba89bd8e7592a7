package detect

import (
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
)

func TestLoadSettingsOfTheOrganisationMode(t *testing.T) {
	base := map[string]string{
		contract.EnvTopicARN:    "arn:aws:sns:eu-west-1:111122223333:alerts",
		contract.EnvDLQURL:      "https://sqs.eu-west-1.amazonaws.com/111122223333/dlq",
		contract.EnvSelfRoleARN: "arn:aws-us-gov:iam::111122223333:role/detector",
	}
	load := func(env map[string]string) (Settings, error) {
		return LoadSettings(func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return base[k]
		})
	}
	s, err := load(map[string]string{contract.EnvOrganizationID: "o-a1b2c3d4e5", contract.EnvMemberRoleName: "defenders-inventory"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Organization() || s.MemberRoleARN("444455556666") != "arn:aws-us-gov:iam::444455556666:role/defenders-inventory" {
		t.Errorf("settings %+v, member role %s", s, s.MemberRoleARN("444455556666"))
	}
	if s, err := load(nil); err != nil || s.Organization() {
		t.Errorf("without the variables: %+v, %v", s, err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"organisation without role", map[string]string{contract.EnvOrganizationID: "o-a1b2c3d4e5"}, contract.EnvMemberRoleName},
		{"role without organisation", map[string]string{contract.EnvMemberRoleName: "defenders-inventory"}, contract.EnvOrganizationID},
		{"not an organisation id", map[string]string{contract.EnvOrganizationID: "o-123", contract.EnvMemberRoleName: "r"}, contract.EnvOrganizationID},
		{"not a role name", map[string]string{contract.EnvOrganizationID: "o-a1b2c3d4e5", contract.EnvMemberRoleName: "a/b"}, contract.EnvMemberRoleName},
		{"own account unknown", map[string]string{contract.EnvOrganizationID: "o-a1b2c3d4e5", contract.EnvMemberRoleName: "r", contract.EnvSelfRoleARN: ""}, contract.EnvSelfRoleARN},
	} {
		if _, err := load(c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
}
