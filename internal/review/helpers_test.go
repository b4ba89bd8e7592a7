package review

import (
	"os"
	"slices"
	"testing"
)

// writeText writes a file for a test.
func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reviewPath reviews a template file or assembly and fails the test on a load error.
func reviewPath(t *testing.T, path string) *Report {
	t.Helper()
	rep, err := Review(path)
	if err != nil {
		t.Fatalf("Review(%s): %v", path, err)
	}
	return rep
}

// rulesOf returns the sorted rule ids of the findings (not acknowledged) whose resource is id.
func rulesOf(rep *Report, id string) []string {
	return rulesIn(rep.Findings, id)
}

// ackedRulesOf returns the sorted rule ids of the acknowledged findings whose resource is id.
func ackedRulesOf(rep *Report, id string) []string {
	return rulesIn(rep.Acknowledged, id)
}

func rulesIn(fs []Finding, id string) []string {
	out := []string{}
	for _, f := range fs {
		if f.Resource == id {
			out = append(out, f.Rule)
		}
	}
	slices.Sort(out)
	return out
}

// findInstance returns the instance or Auto Scaling group with logical id id.
func findInstance(t *testing.T, rep *Report, id string) Instance {
	t.Helper()
	for _, r := range rep.Roles {
		for _, in := range r.Instances {
			if in.LogicalID == id {
				return in
			}
		}
	}
	for _, in := range rep.OtherInstances {
		if in.LogicalID == id {
			return in
		}
	}
	t.Fatalf("no instance %s in the report", id)
	return Instance{}
}

// findRole returns the EC2 role with logical id id.
func findRole(t *testing.T, rep *Report, id string) Role {
	t.Helper()
	for _, r := range rep.Roles {
		if r.LogicalID == id {
			return r
		}
	}
	t.Fatalf("no EC2 role %s in the report", id)
	return Role{}
}

// messageOf returns the message of the first finding of rule about id, or "".
func messageOf(rep *Report, rule, id string) string {
	for _, f := range slices.Concat(rep.Findings, rep.Acknowledged) {
		if f.Rule == rule && f.Resource == id {
			return f.Message
		}
	}
	return ""
}
