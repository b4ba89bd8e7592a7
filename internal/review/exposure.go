package review

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// An exposure is one way an ingress rule can admit traffic once deployed: a protocol and port
// range from a source prefix, in one outcome of the rule's values (parameters at their
// defaults or set otherwise, conditions either way).
type exposure struct {
	r      *rule
	p      protocol
	prefix netip.Prefix
	// cidr is the source as written once evaluated ("0.0.0.0/0"); via names the prefix list
	// it comes from, if any.
	cidr string
	via  string
	e    env
	// picked maps parameters that can take any value (within their AllowedPattern) to the
	// value the review picked for them.
	picked map[string]string
}

// isDefault reports whether the exposure is there when the stack is deployed with every
// parameter at its Default.
func (x exposure) isDefault() bool { return x.e.isDefault() && len(x.picked) == 0 }

// open reports whether the exposure admits SSH, RDP or every port from the whole internet.
func (x exposure) open() bool {
	return x.prefix.Bits() == 0 && (x.p.all || x.p.covers(portSSH) || x.p.covers(portRDP))
}

// wide reports whether the exposure admits SSH or RDP from a range wider than a /24 (IPv4)
// or a /64 (IPv6).
func (x exposure) wide() bool {
	if !x.p.covers(portSSH) && !x.p.covers(portRDP) {
		return false
	}
	a := x.prefix.Addr()
	return (a.Is4() && x.prefix.Bits() < 24) || (a.Is6() && x.prefix.Bits() < 64)
}

// Values the review tries for a field a parameter can set to anything (within its
// AllowedPattern): the world-open sources, and protocols and ports that include SSH and RDP.
var probeValues = map[string][]string{
	"CidrIp":     {"0.0.0.0/0"},
	"CidrIpv6":   {"::/0"},
	"Cidr":       {"0.0.0.0/0", "::/0"},
	"IpProtocol": {"-1", "tcp", "6"},
	"FromPort":   {"22", "3389", "0", "-1"},
	"ToPort":     {"22", "3389", "65535", "-1"},
}

// maxExposures bounds the exposures of one rule.
const maxExposures = 256

// probe returns the concrete values a field's value stands for: its literal, or the probe
// values its free parts can make up (recording the parameter picked); nil when the review
// cannot know it.
func probe(key string, v val) []probed {
	if s, ok := v.literal(); ok {
		return []probed{{s: s}}
	}
	if v.kind != vStr || v.has(segOpaque) {
		return nil
	}
	var out []probed
	cands := probeValues[key]
	if strings.HasPrefix(key, "Cidr") {
		// The parameter may be only part of the source ("${Address}/${Bits}"): try its
		// free parts as a prefix length of 0 or an unspecified address, too.
		for _, fill := range []string{"0", "0.0.0.0", "::", "0.0.0.0/0", "::/0"} {
			var b strings.Builder
			for _, sg := range v.segs {
				if sg.kind == segFree {
					b.WriteString(fill)
				} else {
					b.WriteString(sg.text)
				}
			}
			if c := b.String(); !slices.Contains(cands, c) {
				cands = append(slices.Clone(cands), c)
			}
		}
	}
	for _, c := range cands {
		if v.canBe(c) {
			p, whole := v.freeParam()
			if !whole {
				p = freeName(v)
			}
			out = append(out, probed{s: c, param: p, part: !whole})
		}
	}
	return out
}

// probed is one concrete value of a field, and the free parameter set to make it, if any
// (part: the parameter is only part of the value).
type probed struct {
	s     string
	param string
	part  bool
}

// pickedText is how a probed value is recorded for its parameter: the value itself, or what
// it makes when the parameter is only part of it.
func (p probed) pickedText(key string) string {
	if p.part {
		return "a value that makes " + key + " `" + p.s + "`"
	}
	return p.s
}

// exposures returns every exposure of rule r.
func (z *analyzer) exposures(r *rule) []exposure {
	keys := []string{"IpProtocol", "FromPort", "ToPort", "CidrIp", "CidrIpv6", "SourcePrefixListId"}
	st := r.origin.st
	var out []exposure
	for _, e0 := range r.envs {
		for _, f := range z.ev.fields(st, r.raw, keys, e0) {
			// Protocols and ports: every combination of their concrete values.
			type portCase struct {
				m      map[string]any
				picked map[string]string
			}
			cases := []portCase{{m: map[string]any{}, picked: map[string]string{}}}
			for _, k := range keys[:3] {
				v := f.vals[k]
				var vals []probed
				switch {
				case v.kind == vNoValue:
					continue
				default:
					vals = probe(k, v)
				}
				if vals == nil {
					// Not knowable: keep the template's expression (shown, not trusted).
					vals = []probed{{s: ""}}
				}
				var next []portCase
				for _, c := range cases {
					for _, pv := range vals {
						m := cloneMap(c.m)
						picked := cloneMap(c.picked)
						if pv.s == "" {
							m[k] = r.raw[k]
						} else {
							m[k] = pv.s
						}
						if pv.param != "" {
							picked[pv.param] = pv.pickedText(k)
						}
						next = append(next, portCase{m, picked})
					}
				}
				cases = next
			}
			// Sources: the CIDRs, or the entries of a prefix list of the template.
			type source struct {
				p   probed
				via string
				e   env
			}
			var sources []source
			for _, k := range []string{"CidrIp", "CidrIpv6"} {
				for _, pv := range probe(k, f.vals[k]) {
					sources = append(sources, source{pv, "", f.e})
				}
			}
			if pl := f.vals["SourcePrefixListId"]; pl.kind == vStr && pl.raw != nil {
				if res := z.resolveTo(pl.st, pl.raw, typePrefixList, nil); res != nil {
					for _, it := range z.ev.items(res.st, res.props["Entries"], []env{f.e}) {
						if it.v.kind != vObj {
							continue
						}
						for _, ee := range it.envs {
							for _, cf := range z.ev.fields(res.st, it.v.obj, []string{"Cidr"}, ee) {
								for _, pv := range probe("Cidr", cf.vals["Cidr"]) {
									sources = append(sources, source{pv, display(res), cf.e})
								}
							}
						}
					}
				}
			}
			for _, src := range sources {
				prefix, ok := parseCIDR(strings.TrimSpace(src.p.s))
				if !ok {
					continue
				}
				for _, c := range cases {
					picked := cloneMap(c.picked)
					if src.p.param != "" {
						picked[src.p.param] = src.p.pickedText("the source")
					}
					out = append(out, exposure{r: r, p: parseProtocol(c.m), prefix: prefix, cidr: src.p.s,
						via: src.via, e: src.e, picked: picked})
					if len(out) >= maxExposures {
						return out
					}
				}
			}
		}
	}
	return out
}

// cloneMap copies a map.
func cloneMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ingressFindings judges every ingress rule: open to the whole internet as deployed by
// default (DEF-SG-1), open only when a parameter or condition is set otherwise (DEF-SG-3),
// SSH or RDP from a wide range (DEF-SG-2); then the rules of a group whose sources together
// cover the internet (DEF-SG-1), and EKS node groups whose remote access opens SSH.
func (z *analyzer) ingressFindings() {
	var all []*rule
	for _, sg := range z.byType[typeSG] {
		for i := range z.sgRules[sg] {
			all = append(all, &z.sgRules[sg][i])
		}
	}
	for i := range z.sgRules[nil] {
		all = append(all, &z.sgRules[nil][i])
	}
	byRule := map[*rule][]exposure{}
	for _, r := range all {
		byRule[r] = z.exposures(r)
	}
	inUnion := z.coverFindings(all, byRule)
	for _, r := range all {
		z.judgeRule(r, byRule[r], inUnion)
	}
	z.remoteAccessFindings()
}

// reach says which computes use a security group.
func (z *analyzer) reach(sg *resource) ([]*resource, string) {
	if z.sgUsers == nil {
		z.sgUsers = map[*resource][]*compute{}
		for _, c := range z.computes {
			for _, g := range c.sgs {
				z.sgUsers[g] = append(z.sgUsers[g], c)
			}
		}
	}
	var reach []*resource
	var names []string
	if sg != nil {
		for _, c := range z.sgUsers[sg] {
			reach = append(reach, c.res)
			names = append(names, c.inst.Kind+" `"+display(c.res)+"`")
		}
	}
	if len(names) == 0 {
		return nil, "; no instance of this assembly uses the group"
	}
	return reach, "; it reaches " + strings.Join(names, ", ")
}

// judgeRule records the findings of one rule from its exposures.
func (z *analyzer) judgeRule(r *rule, xs []exposure, inUnion map[*rule]bool) {
	reach, reachText := z.reach(r.sg)
	where := "security group `" + r.SecurityGroup + "`"
	if r.origin != r.sg {
		where += " (rule `" + r.origin.id + "`)"
	}
	var open, wide, openable *exposure
	for i := range xs {
		x := &xs[i]
		switch {
		case x.isDefault() && x.open():
			open = cmpFirst(open, x)
		case x.isDefault() && x.wide() && x.prefix.Bits() > 0:
			wide = cmpFirst(wide, x)
		case !x.isDefault() && x.open():
			openable = cmpFirst(openable, x)
		}
	}
	if open != nil {
		ssh, rdp := open.p.covers(portSSH), open.p.covers(portRDP)
		z.addFinding(RuleOpenIngress, r.origin, reach,
			"%s allows %s from %s, the whole internet%s%s: restrict the source to the addresses that need it "+
				"(a single /32 or /128 per workstation), or reach the instances through SSM Session Manager instead of opening the port.",
			where, describeOpen(open.p, ssh, rdp), open.source(), open.when(), reachText)
		return
	}
	if wide != nil && !inUnion[r] {
		ssh, rdp := wide.p.covers(portSSH), wide.p.covers(portRDP)
		limit := "/24"
		if wide.prefix.Addr().Is6() {
			limit = "/64"
		}
		z.addFinding(RuleWideIngress, r.origin, reach,
			"%s allows %s from %s, %s addresses (wider than %s)%s%s: narrow the source to the hosts that need it "+
				"(a single /32 or /128 per workstation or bastion).",
			where, describeOpen(wide.p, ssh, rdp), wide.source(), addressCount(wide.prefix.Addr().BitLen()-wide.prefix.Bits()),
			limit, wide.when(), reachText)
	}
	if openable != nil {
		ssh, rdp := openable.p.covers(portSSH), openable.p.covers(portRDP)
		z.addFinding(RuleOpenableIngress, r.origin, reach,
			"%s can allow %s from %s, the whole internet, %s%s%s: constrain the parameter (an AllowedPattern or AllowedValues "+
				"that exclude 0.0.0.0/0 and ::/0) or hard-code the narrow source.",
			where, describeOpen(openable.p, ssh, rdp), openable.source(), openable.because(), openable.when(), reachText)
	}
}

// cmpFirst keeps the first exposure found.
func cmpFirst(cur, x *exposure) *exposure {
	if cur == nil {
		return x
	}
	return cur
}

// source renders the exposure's source: "`0.0.0.0/0`", with the parameters at their Default
// that give it, or the prefix list it is an entry of.
func (x exposure) source() string {
	s := "`" + x.cidr + "`"
	if x.via != "" {
		s = "prefix list `" + x.via + "` (entry " + s + ")"
	}
	var defs []string
	for _, b := range x.e.defaults() {
		defs = append(defs, "`"+b.param+"`")
	}
	if len(defs) > 0 && x.isDefault() {
		word := "parameter "
		if len(defs) > 1 {
			word = "parameters "
		}
		s += " (the Default of " + word + strings.Join(defs, ", ") + ")"
	}
	return s
}

// because says which parameter choices lead to the exposure.
func (x exposure) because() string {
	var parts []string
	seen := map[string]bool{}
	for _, b := range x.e.choices() {
		if seen[b.param] {
			continue
		}
		seen[b.param] = true
		if v, ok := x.picked[b.param]; ok {
			parts = append(parts, choiceText(b, v))
		} else if lit, ok := b.v.literal(); ok {
			parts = append(parts, choiceText(b, lit))
		} else {
			parts = append(parts, fmt.Sprintf("parameter `%s` is set accordingly (%s)", b.param, b.how))
		}
	}
	for _, p := range sortedKeys(x.picked) {
		if !seen[p] {
			parts = append(parts, choiceText(binding{param: p}, x.picked[p]))
		}
	}
	if len(parts) == 0 {
		return "a parameter is set accordingly"
	}
	return "when " + strings.Join(parts, " and ")
}

// when names the undecidable conditions the exposure depends on, as " (when ...)".
func (x exposure) when() string {
	u := x.e.undecided()
	if len(u) == 0 {
		return ""
	}
	return " (when " + strings.Join(slices.Compact(u), " and ") + ")"
}

// remoteAccessFindings flags EKS node groups whose RemoteAccess opens SSH to the internet.
func (z *analyzer) remoteAccessFindings() {
	for _, c := range z.computes {
		if len(c.remoteSSH) == 0 {
			continue
		}
		what := fmt.Sprintf("%s `%s` has RemoteAccess with an Ec2SshKey and no SourceSecurityGroups", c.inst.Kind, display(c.res))
		fix := "set RemoteAccess.SourceSecurityGroups to the groups that need SSH, or drop RemoteAccess and use SSM Session Manager"
		if slices.ContainsFunc(c.remoteSSH, env.isDefault) {
			x := exposure{e: c.remoteSSH[slices.IndexFunc(c.remoteSSH, env.isDefault)]}
			z.addFinding(RuleOpenIngress, c.res, nil,
				"%s: EKS opens SSH (tcp 22) on its nodes to `0.0.0.0/0`, the whole internet%s: %s.", what, x.when(), fix)
			continue
		}
		x := exposure{e: c.remoteSSH[0]}
		z.addFinding(RuleOpenableIngress, c.res, nil,
			"%s %s: EKS then opens SSH (tcp 22) on its nodes to `0.0.0.0/0`, the whole internet%s: %s.",
			strings.Replace(what, " has ", " can have ", 1), x.because(), x.when(), fix)
	}
}
