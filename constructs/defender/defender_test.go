package defender

import (
	"strings"
	"testing"
)

func TestPropsValidationNamesTheField(t *testing.T) {
	cases := []struct {
		name  string
		props Props
		want  string
	}{
		{"a VPC is required", Props{}, "Props.VPC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.props.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %s", err, c.want)
			}
		})
	}
	// The plain fields are checked once the required constructs are present; validateScalars is
	// that second half, testable without a jsii kernel.
	for _, c := range []struct {
		name  string
		props Props
		want  string
	}{
		{"a hostile instance type", Props{InstanceType: "t3.micro; rm -rf /"}, "Props.InstanceType"},
		{"a root volume smaller than the image", Props{RootVolumeGiB: 4}, "Props.RootVolumeGiB"},
		{"an empty managed policy name", Props{ManagedPolicies: []string{""}}, "Props.ManagedPolicies[0]"},
		{"a role path without slashes", Props{RolePath: "defenders"}, "Props.RolePath"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.props.validateScalars(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %s", err, c.want)
			}
		})
	}
}
