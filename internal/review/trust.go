package review

import (
	"regexp"
	"strings"
)

// ec2Service matches ec2.amazonaws.com (and its China and URLSuffix
// forms) as a whole word in a rendered principal.
var ec2Service = regexp.MustCompile(`(?:^|[^A-Za-z0-9.-])ec2\.(?:amazonaws\.com(?:\.cn)?|<url-suffix>)(?:$|[^A-Za-z0-9.-])`)

// trustsEC2 reports whether a role's trust policy lets EC2 call sts:AssumeRole: an Allow
// statement whose Principal.Service is ec2.amazonaws.com (literally, or as any value it
// can take: Fn::Sub with AWS::URLSuffix, Fn::FindInMap of a partition map, Fn::If) and
// whose Action covers sts:AssumeRole (or whose NotAction does not exclude it).
func trustsEC2(r *resource) bool {
	doc := docOf(r.st, r.props["AssumeRolePolicyDocument"])
	for _, s := range statements(doc) {
		if s["Effect"] != "Allow" || !allowsAssumeRole(s) {
			continue
		}
		p, _ := s["Principal"].(map[string]any)
		for _, svc := range elems(p["Service"]) {
			if ec2Service.MatchString(Render(svc)) {
				return true
			}
			if _, fn := svc.(map[string]any); !fn {
				continue
			}
			for _, o := range newEvaluator().values(r.st, svc, nil) {
				if s, ok := o.v.literal(); ok && ec2Service.MatchString(s) {
					return true
				}
			}
		}
	}
	return false
}

// allowsAssumeRole reports whether a trust statement's actions include sts:AssumeRole.
func allowsAssumeRole(s map[string]any) bool {
	if na, ok := s["NotAction"]; ok && s["Action"] == nil {
		for _, a := range stringsOf(na) {
			if actionMatches(a, "sts:AssumeRole") {
				return false
			}
		}
		return true
	}
	for _, a := range stringsOf(s["Action"]) {
		if actionMatches(a, "sts:AssumeRole") {
			return true
		}
	}
	return false
}

// actionMatches reports whether the IAM action pattern p (with * and ? wildcards, case
// insensitive) matches action.
func actionMatches(p, action string) bool {
	p, action = strings.ToLower(p), strings.ToLower(action)
	if !strings.ContainsAny(p, "*?") {
		return p == action
	}
	// Glob matching with backtracking to the last star: linear in practice.
	pi, ai, star, mark := 0, 0, -1, 0
	for ai < len(action) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == action[ai]):
			pi++
			ai++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ai
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			ai = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// statements returns the statements of a policy document.
func statements(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, s := range elems(doc["Statement"]) {
		if m, ok := s.(map[string]any); ok {
			if _, _, fn := intrinsic(m); !fn {
				out = append(out, m)
			}
		}
	}
	return out
}
