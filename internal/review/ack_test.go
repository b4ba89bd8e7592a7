package review

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFindingsAreAcknowledgedPerRuleAndPerResourceWithAReason(t *testing.T) {
	path := "testdata/templates/acknowledgements.template.json"
	rep := reviewPath(t, path)
	tests := []struct {
		name   string
		id     string
		active []string
		acked  []string
	}{
		{"a reasoned acknowledgement of DEF-LOCK-1 moves the finding to Acknowledged", "GoodRole", []string{}, []string{RuleUnlockedRole}},
		{"the older defenders:exempt is an acknowledgement of DEF-LOCK-1", "LegacyRole", []string{}, []string{RuleUnlockedRole}},
		{"a reason under 10 characters is an error and acknowledges nothing", "ShortReasonRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"an unknown rule id is an error and acknowledges nothing", "UnknownRuleRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"a missing reason is an error and acknowledges nothing", "MissingReasonRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"an object instead of a list is an error", "NotAListRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"DEF-ACK-1 itself cannot be acknowledged", "SelfAckRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"a short defenders:exempt reason is an error too", "LegacyShortRole", []string{RuleBadAcknowledgement, RuleUnlockedRole}, []string{}},
		{"an ingress finding is acknowledged on the security group that has the rule", "OpenSSH", []string{}, []string{RuleOpenIngress}},
		{"an acknowledgement of another rule leaves the instance's IMDS finding", "WrongRuleServer", []string{RuleIMDSv1}, []string{}},
		{"an instance acknowledges its own IMDS finding", "AckedServer", []string{}, []string{RuleIMDSv1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rulesOf(rep, tc.id); !slices.Equal(got, tc.active) {
				t.Errorf("findings %v, want %v", got, tc.active)
			}
			if got := ackedRulesOf(rep, tc.id); !slices.Equal(got, tc.acked) {
				t.Errorf("acknowledged %v, want %v", got, tc.acked)
			}
		})
	}
	t.Run("acknowledged findings count as neither errors nor warnings", func(t *testing.T) {
		errs := 0
		for _, f := range rep.Findings {
			if f.Severity == SeverityError {
				errs++
			}
		}
		if rep.Errors != errs || rep.Errors+rep.Warnings != len(rep.Findings) || len(rep.Acknowledged) != 4 {
			t.Errorf("errors %d warnings %d findings %d acknowledged %d", rep.Errors, rep.Warnings, len(rep.Findings), len(rep.Acknowledged))
		}
	})
	t.Run("the role shows the reason as its exemption and its findings list the acknowledgement", func(t *testing.T) {
		r := findRole(t, rep, "GoodRole")
		if !strings.HasPrefix(r.Exemption, "build runner") || len(r.Findings) != 1 || !strings.HasPrefix(r.Findings[0], "A") {
			t.Errorf("role %+v", r)
		}
	})
	t.Run("the JSON report carries the reason", func(t *testing.T) {
		var js bytes.Buffer
		if err := rep.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(js.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Acknowledged) != 4 || back.Acknowledged[0].Reason == "" || back.Acknowledged[0].ID != "A1" {
			t.Errorf("acknowledged %+v", back.Acknowledged)
		}
	})
	t.Run("the reports match the golden files", func(t *testing.T) {
		var md, js bytes.Buffer
		if err := rep.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "golden", "acknowledgements.md"), md.Bytes())
		golden(t, filepath.Join("testdata", "golden", "acknowledgements.json"), js.Bytes())
	})
}
