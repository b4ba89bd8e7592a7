package review

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Condition operators that mean "deny unless the key is one of these".
var (
	notIPOps     = []string{"notipaddress", "notipaddressifexists"}
	notStringOps = []string{
		"stringnotequals", "stringnotequalsifexists", "stringnotequalsignorecase",
		"stringnotequalsignorecaseifexists", "stringnotlike", "stringnotlikeifexists",
	}
)

// Condition keys of a lock (lower case: IAM keys are case-insensitive).
const (
	keySourceIP       = "aws:sourceip"
	keySourceVPC      = "aws:sourcevpc"
	keyVPCSourceIP    = "aws:vpcsourceip"
	keyViaService     = "aws:viaawsservice"
	keyInstancePrivIP = "aws:ec2instancesourceprivateipv4"
	keyInstanceVPC    = "aws:ec2instancesourcevpc"
)

// condView is a policy Condition block with lower-cased operators and keys.
type condView map[string]map[string]any

// newCondView normalizes a Condition block.
func newCondView(c map[string]any) condView {
	cv := condView{}
	for op, kv := range c {
		m, _ := kv.(map[string]any)
		lop := strings.ToLower(op)
		if cv[lop] == nil {
			cv[lop] = map[string]any{}
		}
		for k, v := range m {
			cv[lop][strings.ToLower(k)] = v
		}
	}
	return cv
}

// onlyNullAndVia reports whether the block holds nothing but Null checks
// and the aws:ViaAWSService exception.
func (cv condView) onlyNullAndVia() bool {
	for op, kv := range cv {
		for k := range kv {
			if op == "null" || (strings.HasPrefix(op, "bool") && k == keyViaService) {
				continue
			}
			return false
		}
	}
	return true
}

// text returns the lower-cased literal text of a condition value.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return strings.ToLower(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// lockedRaw is a value a lock allows, with where it was written.
type lockedRaw struct {
	doc   attachedDoc
	value any
}

// lock analyzes the lock statements attached to role and records the
// findings about them.
func (z *analyzer) lock(role *resource, exemption string) Lock {
	l := Lock{Modes: []string{}, Policies: []string{}, Statements: []string{}, SourceIPs: []LockedValue{}, VPCs: []LockedValue{}}
	var ips, vpcs, privs []lockedRaw
	var internet, endpoints bool
	var origin *resource
	for _, d := range z.roleDocs[role] {
		for i, s := range statements(d.doc) {
			if s["Effect"] != "Deny" || s["NotAction"] != nil || !containsStar(s["Action"]) || !containsStar(s["Resource"]) {
				continue
			}
			cm, _ := s["Condition"].(map[string]any)
			cv := newCondView(cm)
			nullSrc := text(cv["null"][keySourceIP])
			matched := false
			for _, op := range notIPOps {
				if v, ok := cv[op][keySourceIP]; ok {
					matched, internet = true, true
					for _, el := range elems(v) {
						ips = append(ips, lockedRaw{d, el})
					}
					if nullSrc != "false" {
						// A negated operator matches an absent key: without
						// Null "false" this also denies every endpoint call.
						endpoints, l.EndpointsDenied = true, true
					}
				}
				if v, ok := cv[op][keyVPCSourceIP]; ok {
					matched = true
					for _, el := range elems(v) {
						privs = append(privs, lockedRaw{d, el})
					}
				}
			}
			for _, op := range notStringOps {
				if v, ok := cv[op][keySourceVPC]; ok {
					matched, endpoints = true, true
					for _, el := range elems(v) {
						vpcs = append(vpcs, lockedRaw{d, el})
					}
				}
				if v, ok := cv[op][keyInstancePrivIP]; ok && strings.EqualFold(Render(v), "${aws:VpcSourceIp}") {
					matched, l.SameHostOnly = true, true
				}
				if v, ok := cv[op][keyInstanceVPC]; ok && strings.EqualFold(Render(v), "${aws:SourceVpc}") {
					matched = true
				}
			}
			if cv.onlyNullAndVia() {
				nulls := cv["null"]
				switch {
				case nullSrc == "false" && len(nulls) == 1:
					matched, internet, l.InternetDenied = true, true, true
				case nullSrc == "true" && len(nulls) == 1:
					matched, endpoints, l.EndpointsDenied = true, true, true
				case nullSrc == "true" && text(nulls[keyVPCSourceIP]) == "true" && len(nulls) == 2:
					matched = true
				}
			}
			if !matched {
				continue
			}
			sid, _ := s["Sid"].(string)
			if sid == "" {
				sid = fmt.Sprintf("statement %d of %s", i+1, d.source)
			}
			l.Statements = append(l.Statements, sid)
			if !slices.Contains(l.Policies, d.source) {
				l.Policies = append(l.Policies, d.source)
			}
			if origin == nil {
				origin = d.res
			}
		}
	}
	slices.Sort(l.Policies)
	if origin == nil {
		origin = role
	}

	users := z.usersOf[role]
	modes := map[string]bool{}
	seen := map[string]bool{}
	for _, raw := range ips {
		lv := z.sourceIP(role, users, raw)
		if seen[lv.Value] {
			continue
		}
		seen[lv.Value] = true
		modes[lv.Mode] = true
		l.SourceIPs = append(l.SourceIPs, lv)
	}
	for _, raw := range vpcs {
		lv := z.vpc(raw)
		if !slices.ContainsFunc(l.VPCs, func(x LockedValue) bool { return x.Value == lv.Value }) {
			l.VPCs = append(l.VPCs, lv)
		}
	}
	for _, raw := range privs {
		lv := LockedValue{Value: Render(raw.value), RefersTo: z.refersTo(raw.doc.st, raw.value)}
		if !slices.ContainsFunc(l.PrivateIPs, func(x LockedValue) bool { return x.Value == lv.Value }) {
			l.PrivateIPs = append(l.PrivateIPs, lv)
		}
	}
	for _, m := range []string{ModeInstanceIP, ModeElasticIP, ModeNATEgress, ModeAddresses} {
		if modes[m] {
			l.Modes = append(l.Modes, m)
		}
	}
	if l.InternetDenied && len(l.SourceIPs) == 0 {
		l.Modes = append(l.Modes, ModeEndpointsOnly)
	}

	name := display(role)
	switch {
	case len(l.Statements) == 0:
		l.Status = LockUnlocked
		l.Modes = []string{ModeNone}
		if exemption == "" {
			z.addFinding(RuleUnlockedRole, role, nil,
				"EC2 role `%s` has no lock: credentials stolen from its instances work from anywhere. "+
					"Attach a lock (an AWS::IAM::Policy of Deny statements on aws:SourceIp and aws:SourceVpc, "+
					"as the Defenders lock construct renders it) or, if the role must stay unlocked, "+
					"exempt it with role Metadata `{\"%s\": \"<reason>\"}`.", name, ExemptKey)
		}
	case internet && endpoints:
		l.Status = LockLocked
	default:
		l.Status = LockPartial
		if exemption != "" {
			break
		}
		if !internet {
			z.addFinding(RuleLockMissesInternet, origin, []*resource{role},
				"the lock of EC2 role `%s` does not restrict calls over the internet: stolen credentials still work from any public address. "+
					"Add a Deny statement with NotIpAddress aws:SourceIp (DenyPublicCallsFromOtherAddresses) "+
					"or Null aws:SourceIp \"false\" (DenyPublicCallsFromAnyAddress).", name)
		}
		if !endpoints {
			z.addFinding(RuleLockMissesEndpoint, origin, []*resource{role},
				"the lock of EC2 role `%s` does not restrict calls through VPC endpoints: stolen credentials work through an endpoint in any VPC, the attacker's included. "+
					"Add a Deny statement with StringNotEquals aws:SourceVpc (DenyEndpointCallsFromOtherVpcs) "+
					"or Null aws:SourceIp \"true\" (DenyEndpointCallsFromAnyVpc).", name)
		}
	}
	return l
}

// sourceIP classifies one aws:SourceIp value of role's lock, recording a
// finding when it belongs to another instance or allows everything.
func (z *analyzer) sourceIP(role *resource, users []*compute, raw lockedRaw) LockedValue {
	lv := LockedValue{Value: Render(raw.value), Mode: ModeAddresses}
	origin := raw.doc.res
	if origin == nil {
		origin = role
	}
	refs := z.rv.refsIn(raw.doc.st, raw.value)
	if len(refs) == 0 {
		if s, ok := literal(raw.doc.st, raw.value); ok {
			if p, ok := parseCIDR(s); ok && p.Bits() == 0 {
				z.addFinding(RuleLockAdmitsAll, origin, []*resource{role},
					"the lock of EC2 role `%s` allows aws:SourceIp `%s`, the whole internet, which makes the lock worthless: "+
						"list the public addresses the instances call from (their public IP, Elastic IP or NAT gateway address).", display(role), s)
			}
			return lv
		}
		lv.RefersTo = z.refersTo(raw.doc.st, raw.value)
		return lv
	}
	r := refs[0]
	var inst *resource
	switch r.res.typ {
	case typeInstance:
		if r.attr == "PublicIp" || r.attr == "PublicDnsName" {
			lv.Mode = ModeInstanceIP
			lv.RefersTo = "public IP of instance `" + display(r.res) + "`"
			inst = r.res
		} else {
			lv.RefersTo = r.attr + " of instance `" + display(r.res) + "`"
		}
	case typeEIP:
		if nat := z.natOfEIP[r.res]; nat != nil {
			lv.Mode = ModeNATEgress
			lv.RefersTo = "Elastic IP `" + display(r.res) + "` of NAT gateway `" + display(nat) + "`"
		} else if in := z.instOfEIP[r.res]; in != nil {
			lv.Mode = ModeElasticIP
			lv.RefersTo = "Elastic IP `" + display(r.res) + "` of instance `" + display(in) + "`"
			inst = in
		} else {
			lv.Mode = ModeElasticIP
			lv.RefersTo = "Elastic IP `" + display(r.res) + "`"
		}
	default:
		lv.RefersTo = z.refersTo(raw.doc.st, raw.value)
	}
	if inst != nil && !slices.ContainsFunc(users, func(c *compute) bool { return c.res == inst }) {
		other := "it has no instance profile with an EC2 role"
		if c := z.computeOf[inst]; c != nil && c.role != nil {
			other = "it uses role `" + display(c.role) + "`"
		}
		own := "no instance of this assembly uses the role"
		if len(users) > 0 {
			names := make([]string, len(users))
			for i, u := range users {
				names[i] = "`" + display(u.res) + "`"
			}
			own = "the role is used by " + strings.Join(names, ", ")
		}
		z.addFinding(RuleCrossedLock, origin, []*resource{role},
			"the lock of EC2 role `%s` allows the address of instance `%s` (`%s`), which does not use this role (%s; %s): "+
				"stolen credentials would work from that instance. Lock the role to the addresses of its own instances.",
			display(role), display(inst), lv.Value, other, own)
	}
	return lv
}

// vpc describes one aws:SourceVpc value of a lock.
func (z *analyzer) vpc(raw lockedRaw) LockedValue {
	return LockedValue{Value: Render(raw.value), RefersTo: z.refersTo(raw.doc.st, raw.value)}
}

// refersTo says what a value resolves to: a resource of the assembly, an
// export outside it, or a parameter.
func (z *analyzer) refersTo(st *Stack, v any) string {
	if _, ok := literal(st, v); ok {
		return ""
	}
	for _, r := range z.rv.refsIn(st, v) {
		what := map[string]string{typeVPC: "VPC", typeInstance: "instance", typeEIP: "Elastic IP", typeSG: "security group"}[r.res.typ]
		if what == "" {
			what = r.res.typ
		}
		s := what + " `" + display(r.res) + "`"
		if r.attr != "" && r.res.typ != typeVPC {
			s = r.attr + " of " + s
		}
		return s
	}
	if n, ok := importName(st, v); ok {
		return "export `" + n + "` is not in this assembly (unresolved)"
	}
	if m, ok := v.(map[string]any); ok {
		if name, arg, _ := intrinsic(m); name == "Ref" {
			if id, ok := arg.(string); ok {
				if _, isParam := st.params[id]; isParam {
					return "parameter `" + id + "`"
				}
			}
		}
	}
	return "unresolved"
}

// parseCIDR parses a literal address or CIDR.
func parseCIDR(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}
