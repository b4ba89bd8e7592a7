package review

import (
	"slices"
	"strings"
	"testing"
)

func TestIMDSIsJudgedWhereverMetadataOptionsAreSet(t *testing.T) {
	rep := reviewPath(t, "testdata/templates/imds-sources.template.json")
	states := []struct {
		name string
		id   string
		imds string
	}{
		{"an instance that requires tokens itself needs no launch template", "WiddixServer", IMDSv2Required},
		{"the instance's own HttpTokens overrides its launch template's", "OverridesTemplate", IMDSv2Required},
		{"an instance that sets HttpTokens optional weakens a launch template that requires tokens", "WeakensTemplate", IMDSv1Allowed},
		{"HttpEndpoint disabled on the instance means no metadata service", "NoMetadataService", IMDSDisabled},
		{"an instance that sets other metadata options inherits HttpTokens from its launch template", "InheritsTemplate", IMDSv2Required},
		{"a launch configuration that requires tokens protects its Auto Scaling group", "RequiredGroup", IMDSv2Required},
		{"a launch configuration that disables the endpoint has no metadata service", "DisabledGroup", IMDSDisabled},
		{"a launch configuration without MetadataOptions allows IMDSv1", "BareGroup", IMDSv1Allowed},
		{"a launch template outside the assembly leaves the setting unknown here", "ImportedTemplate", IMDSUnknown},
	}
	for _, tc := range states {
		t.Run(tc.name, func(t *testing.T) {
			if in := findInstance(t, rep, tc.id); in.IMDS != tc.imds {
				t.Errorf("IMDS = %q, want %q", in.IMDS, tc.imds)
			}
		})
	}
	findings := []struct {
		name  string
		id    string
		rules []string
	}{
		{"the instance that weakens its launch template is the finding's resource", "WeakensTemplate", []string{RuleIMDSv1}},
		{"no finding for an instance without a metadata service", "NoMetadataService", []string{}},
		{"a launch template that allows IMDSv1 is a finding even when its only instance overrides it", "OptionalTemplate", []string{RuleIMDSv1}},
		{"a launch template that nothing in the template uses is judged", "UnusedTemplate", []string{RuleIMDSv1}},
		{"the launch configuration, not the Auto Scaling group, carries the finding", "BareConfig", []string{RuleIMDSv1}},
		{"never the Auto Scaling group itself", "BareGroup", []string{}},
		{"a launch configuration that disables the endpoint is no finding", "DisabledConfig", []string{}},
		{"an instance whose launch template is outside the assembly gets no IMDS finding here", "ImportedTemplate", []string{}},
	}
	for _, tc := range findings {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.DeleteFunc(rulesOf(rep, tc.id), func(r string) bool { return !strings.HasPrefix(r, "DEF-IMDS") })
			if !slices.Equal(got, tc.rules) {
				t.Errorf("IMDS findings %v, want %v", got, tc.rules)
			}
		})
	}
	t.Run("the finding says where HttpTokens is set, who is exposed and how to fix it there", func(t *testing.T) {
		if m := messageOf(rep, RuleIMDSv1, "WeakensTemplate"); !strings.Contains(m, `HttpTokens is "optional" in the instance itself`) {
			t.Errorf("message %q", m)
		}
		m := messageOf(rep, RuleIMDSv1, "BareConfig")
		for _, want := range []string{"launch configuration `imds-sources/BareConfig`", "MetadataOptions.HttpTokens is not set in it",
			"Auto Scaling group `imds-sources/BareGroup`", "in the launch configuration, or move to a launch template"} {
			if !strings.Contains(m, want) {
				t.Errorf("message %q lacks %q", m, want)
			}
		}
		if m := messageOf(rep, RuleIMDSv1, "UnusedTemplate"); !strings.Contains(m, "nothing in this assembly launches from it") {
			t.Errorf("message %q", m)
		}
	})
	t.Run("the Auto Scaling group lists the finding of its launch configuration", func(t *testing.T) {
		in := findInstance(t, rep, "BareGroup")
		var id string
		for _, f := range rep.Findings {
			if f.Resource == "BareConfig" {
				id = f.ID
			}
		}
		if !slices.Contains(in.Findings, id) {
			t.Errorf("BareGroup findings %v lack %s", in.Findings, id)
		}
	})
}

func TestIMDSThatDependsOnParametersIsJudgedOnEveryValue(t *testing.T) {
	rep := reviewPath(t, "testdata/templates/imds-parameters.template.json")
	tests := []struct {
		name   string
		id     string // the instance or group
		imds   string
		anchor string // the resource the finding names
		rule   string
		says   string
	}{
		{"a condition whose parameter defaults to keeping IMDSv1 is an error (amazon-eks-ami)", "EksNodes", IMDSv1Allowed, "NodeLaunchTemplate", RuleIMDSv1,
			"which is \"optional\" with the template's defaults (condition `IMDSv1Disabled`, parameter `DisableIMDSv1`)"},
		{"a parameter that defaults to required but allows optional is a warning (Quick Start bastion)", "BastionTemplate", IMDSv2Required, "BastionLaunchTemplate", RuleIMDSv1Possible,
			"which can be \"optional\" (parameter `EC2MetadataHttpTokens`)"},
		{"a parameter that defaults to optional is an error", "LegacyDefault", IMDSv1Allowed, "LegacyDefault", RuleIMDSv1, "parameter `LegacyTokens`"},
		{"a condition that allows IMDSv1 only away from the defaults is a warning", "DevOnlyV1", IMDSv2Required, "DevOnlyV1", RuleIMDSv1Possible, "condition `IsDev`"},
		{"an endpoint disabled by default but enabled by a condition is a warning", "DevDisablesEndpoint", IMDSDisabled, "DevDisablesEndpoint", RuleIMDSv1Possible, "HttpEndpoint in the instance itself"},
		{"AWS::NoValue falls back to the launch template's parameter", "NoValueFallsBack", IMDSv2Required, "NoValueFallsBack", RuleIMDSv1Possible, "condition `IsDev`"},
		{"a parameter without a default that admits anything is a warning", "ChosenAtDeploy", IMDSv1Possible, "ChosenAtDeploy", RuleIMDSv1Possible, "any value"},
		{"a value the review cannot evaluate is judged as allowing IMDSv1", "ImportedTokens", IMDSv1Allowed, "ImportedTokens", RuleIMDSv1, "not the literal \"required\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if in := findInstance(t, rep, tc.id); in.IMDS != tc.imds {
				t.Errorf("IMDS = %q, want %q", in.IMDS, tc.imds)
			}
			got := slices.DeleteFunc(rulesOf(rep, tc.anchor), func(r string) bool { return !strings.HasPrefix(r, "DEF-IMDS") })
			if !slices.Equal(got, []string{tc.rule}) {
				t.Fatalf("IMDS findings of %s: %v, want [%s]", tc.anchor, got, tc.rule)
			}
			if m := messageOf(rep, tc.rule, tc.anchor); !strings.Contains(m, tc.says) {
				t.Errorf("message %q does not say %q", m, tc.says)
			}
		})
	}
}
