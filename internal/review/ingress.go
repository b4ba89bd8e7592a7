package review

import (
	"cmp"
	"slices"
	"strings"
)

// rule is an ingress rule with the raw values the findings need.
type rule struct {
	Ingress
	sg     *resource
	origin *resource
	raw    map[string]any
	// envs are the decisions (parameters, conditions) under which the rule exists: one
	// empty environment for a rule that always does.
	envs []env
}

// indexIngress collects the ingress rules of every security group: the rules of its
// SecurityGroupIngress (a list, or an Fn::If that chooses one; elements chosen by Fn::If
// count, each with the decisions that put it there) and standalone AWS::EC2::SecurityGroupIngress
// resources. A group or rule with a Condition exists only when the condition holds.
func (z *analyzer) indexIngress() {
	for _, sg := range z.byType[typeSG] {
		for _, it := range z.ev.items(sg.st, sg.props["SecurityGroupIngress"], z.ev.exists(sg)) {
			if it.v.kind == vObj {
				z.sgRules[sg] = append(z.sgRules[sg], z.rule(sg, sg, it.v.obj, it.envs))
			}
		}
	}
	for _, in := range z.byType[typeSGIngress] {
		envs := z.ev.exists(in)
		if len(envs) == 0 {
			continue // its condition is never true
		}
		sg := z.resolveTo(in.st, in.props["GroupId"], typeSG, nil)
		if sg == nil {
			sg = z.resolveTo(in.st, in.props["GroupName"], typeSG, z.sgByName)
		}
		z.sgRules[sg] = append(z.sgRules[sg], z.rule(sg, in, in.props, envs))
	}
	for sg, rules := range z.sgRules {
		slices.SortFunc(rules, compareRules)
		z.sgRules[sg] = rules
	}
}

// compareRules orders ingress rules for display.
func compareRules(a, b rule) int {
	return cmp.Or(strings.Compare(a.SecurityGroup, b.SecurityGroup), strings.Compare(a.Protocol, b.Protocol),
		cmp.Compare(portKey(a.Ports), portKey(b.Ports)), strings.Compare(a.Ports, b.Ports),
		strings.Compare(a.Source, b.Source), strings.Compare(a.Resource, b.Resource))
}

// portKey sorts numeric port ranges numerically.
func portKey(p string) int {
	from, _, _ := strings.Cut(p, "-")
	n := 0
	for _, c := range from {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// rule builds an ingress rule of sg (nil when the group is outside the
// assembly) declared by origin.
func (z *analyzer) rule(sg, origin *resource, m map[string]any, envs []env) rule {
	p := parseProtocol(m)
	r := rule{sg: sg, origin: origin, raw: m, envs: envs}
	r.Stack = origin.st.Name
	r.Resource = origin.id
	if sg != nil {
		r.SecurityGroup = display(sg)
	} else {
		r.SecurityGroup = unresolvedText(cmp.Or(m["GroupId"], m["GroupName"]))
	}
	r.Protocol = p.proto
	r.Ports = p.text
	switch {
	case m["CidrIp"] != nil:
		r.Source, r.SourceType = Render(m["CidrIp"]), "cidr"
	case m["CidrIpv6"] != nil:
		r.Source, r.SourceType = Render(m["CidrIpv6"]), "cidr"
	case m["SourcePrefixListId"] != nil:
		r.Source, r.SourceType = Render(m["SourcePrefixListId"]), "prefix list"
	case m["SourceSecurityGroupId"] != nil:
		r.SourceType = "security group"
		if src := z.resolveTo(origin.st, m["SourceSecurityGroupId"], typeSG, nil); src != nil {
			r.Source = display(src)
		} else {
			r.Source = unresolvedText(m["SourceSecurityGroupId"])
		}
	case m["SourceSecurityGroupName"] != nil:
		r.Source, r.SourceType = Render(m["SourceSecurityGroupName"]), "security group"
	default:
		r.Source, r.SourceType = "", "none"
	}
	if d, ok := m["Description"]; ok {
		r.Description = Render(d)
	}
	return r
}
