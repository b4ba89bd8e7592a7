package review

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/contract"
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
	keySourceVPCE     = "aws:sourcevpce"
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

// What counts as a lock statement.
//
// A statement of a policy attached to the role (an AWS::IAM::Policy, AWS::IAM::RolePolicy or
// AWS::IAM::ManagedPolicy naming the role, a customer managed policy in its ManagedPolicyArns,
// or one of its inline Policies; documents written as objects or as JSON strings) is a lock
// statement when all of these hold:
//
//   - Effect is the literal "Deny";
//   - it covers every action: Action contains "*", or NotAction lists only single named
//     actions ("service:Action", no wildcard), which are then reported as exceptions;
//   - it covers every resource: Resource contains "*" and there is no NotResource;
//   - every condition is one a lock is made of: NotIpAddress[IfExists] on aws:SourceIp or
//     aws:VpcSourceIp; StringNotEquals/StringNotLike (any variant) on aws:SourceVpc,
//     aws:Ec2InstanceSourceVpc or aws:Ec2InstanceSourcePrivateIPv4; Null on aws:SourceIp,
//     aws:VpcSourceIp or aws:SourceVpc; Bool[IfExists] aws:ViaAWSService "false". Any other
//     condition (a region, a tag, MFA, ...) narrows the Deny to some calls, so the statement
//     is not a lock; StringNotEquals/StringNotLike may also test aws:SourceVpce, the shared
//     VPC endpoints an app trusts (the Defenders lock renders them next to aws:SourceVpc and
//     aws:Ec2InstanceSourceVpc), which are reported as SharedVPCEndpoints;
//   - and the conditions actually restrict a network path (see lock below); a Deny without
//     any condition denies everything and counts as locking both paths.
//
// The role is locked when its lock statements restrict both paths: calls over the internet
// (aws:SourceIp) and calls through VPC endpoints (aws:SourceVpc, or denying them all);
// partial when only one is; unlocked when no statement qualifies. So a Deny of s3:* on a
// bucket unless aws:SourceVpc is not a lock (it leaves every other action open), and a role
// whose only Deny is on endpoint calls is partial.
//
// constructs/guard judges differently today: it calls a role locked when any Deny statement
// of an AWS::IAM::Policy or inline policy mentions aws:SourceIp or aws:SourceVpc in its
// condition, whatever its actions, resources and other conditions, and it does not read
// managed policies or documents written as strings. The review's criterion is the one the
// guard should adopt when it runs the review.

// lockVocabulary lists, per lower-cased condition operator, the lower-cased keys a lock
// statement may test.
var lockVocabulary = func() map[string][]string {
	v := map[string][]string{
		"null":         {keySourceIP, keyVPCSourceIP, keySourceVPC},
		"bool":         {keyViaService},
		"boolifexists": {keyViaService},
	}
	for _, op := range notIPOps {
		v[op] = []string{keySourceIP, keyVPCSourceIP}
	}
	for _, op := range notStringOps {
		v[op] = []string{keySourceVPC, keySourceVPCE, keyInstanceVPC, keyInstancePrivIP}
	}
	return v
}()

// onlyLockKeys reports whether every condition of the block is one a lock is made of.
func (cv condView) onlyLockKeys() bool {
	for op, kv := range cv {
		for k, v := range kv {
			if !slices.Contains(lockVocabulary[op], k) {
				return false
			}
			if k == keyViaService && text(v) != "false" {
				return false
			}
		}
	}
	return true
}

// lockShape reports whether statement s denies every action on every resource, and returns
// the actions a NotAction leaves out.
func lockShape(s map[string]any) ([]string, bool) {
	if s["Effect"] != "Deny" || s["NotResource"] != nil || !containsStar(s["Resource"]) {
		return nil, false
	}
	_, hasAction := s["Action"]
	_, hasNot := s["NotAction"]
	switch {
	case hasAction && !hasNot:
		return nil, containsStar(s["Action"])
	case hasNot && !hasAction:
		var except []string
		for _, el := range elems(s["NotAction"]) {
			a, ok := el.(string)
			svc, name, found := strings.Cut(a, ":")
			if !ok || !found || svc == "" || name == "" || strings.ContainsAny(a, "*?") {
				return nil, false
			}
			except = append(except, a)
		}
		return except, len(except) > 0
	}
	return nil, false
}

// lockedRaw is a value a lock allows, with where it was written.
type lockedRaw struct {
	doc   attachedDoc
	value any
}

// lock analyzes the lock statements attached to role and records the
// findings about them.
func (z *analyzer) lock(role *resource) Lock {
	l := Lock{Modes: []string{}, Policies: []string{}, Statements: []string{}, SourceIPs: []LockedValue{}, VPCs: []LockedValue{}}
	var ips, vpcs, vpces, privs []lockedRaw
	var internet, endpoints bool
	var origin *resource
	for _, d := range z.roleDocs[role] {
		for i, s := range statements(d.doc) {
			except, ok := lockShape(s)
			if !ok {
				continue
			}
			cm, _ := s["Condition"].(map[string]any)
			cv := newCondView(cm)
			if !cv.onlyLockKeys() {
				continue
			}
			nullSrc := text(cv["null"][keySourceIP])
			matched := false
			if len(cv) == 0 {
				// A Deny of everything without a condition: the credentials are worthless.
				matched, internet, endpoints, l.InternetDenied, l.EndpointsDenied = true, true, true, true, true
			}
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
					if nullSrc != "true" {
						// Internet calls carry no aws:SourceVpc, and a negated operator
						// matches an absent key: unless the statement is scoped to
						// endpoint calls (Null aws:SourceIp "true"), it denies every
						// internet call too.
						internet, l.InternetDenied = true, true
					}
				}
				if v, ok := cv[op][keySourceVPCE]; ok {
					matched = true
					for _, el := range elems(v) {
						vpces = append(vpces, lockedRaw{d, el})
					}
					if _, withInstance := cv[op][keyInstanceVPC]; !withInstance {
						// Denied unless the call came through a listed endpoint (or, with
						// aws:SourceVpc in the same operator, from a listed VPC): the endpoint
						// path is restricted. Internet calls carry no aws:SourceVpce, so
						// unless the statement is scoped to endpoint calls it denies them too.
						endpoints = true
						if nullSrc != "true" {
							internet, l.InternetDenied = true, true
						}
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
			for _, a := range except {
				if !slices.Contains(l.ExceptActions, a) {
					l.ExceptActions = append(l.ExceptActions, a)
				}
			}
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
	for _, raw := range vpces {
		lv := LockedValue{Value: Render(raw.value), RefersTo: z.refersTo(raw.doc.st, raw.value)}
		if !slices.ContainsFunc(l.SharedVPCEndpoints, func(x LockedValue) bool { return x.Value == lv.Value }) {
			l.SharedVPCEndpoints = append(l.SharedVPCEndpoints, lv)
		}
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
	// No address of the instances' own: VPC endpoints only, plus what the app trusts.
	if len(l.Modes) == 0 && internet && (l.InternetDenied || modes[ModeTrustedEgress]) {
		l.Modes = append(l.Modes, ModeEndpointsOnly)
	}
	if modes[ModeTrustedEgress] {
		l.Modes = append(l.Modes, ModeTrustedEgress)
	}

	name := display(role)
	switch {
	case len(l.Statements) == 0:
		l.Status = LockUnlocked
		l.Modes = []string{ModeNone}
		z.addFinding(RuleUnlockedRole, role, nil,
			"EC2 role `%s` has no lock: credentials stolen from its instances work from anywhere. "+
				"Attach a lock (an AWS::IAM::Policy of Deny statements on aws:SourceIp and aws:SourceVpc, "+
				"as the Defenders lock construct renders it) or, if the role must stay unlocked, "+
				"acknowledge the rule with role Metadata `{\"%s\": [{\"rule\": \"%s\", \"reason\": \"<why>\"}]}` (lock.Exempt writes it).",
			name, AcknowledgeKey, RuleUnlockedRole)
	case internet && endpoints:
		l.Status = LockLocked
	default:
		l.Status = LockPartial
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
		} else {
			lv.RefersTo = z.refersTo(raw.doc.st, raw.value)
		}
		if slices.Contains(trustedEgress(raw.doc.res), lv.Value) {
			lv.Mode, lv.RefersTo = ModeTrustedEgress, "trusted egress prefix (Metadata `"+TrustKey+"` of the lock's policy)"
		}
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
	if refs := z.rv.refsIn(st, v); len(refs) > 0 { // the first reference names the value
		r := refs[0]
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

// TrustKey is the Metadata key, on a lock's policy resource, that lists the app's trust rendered
// into the lock: {"egressPrefixes": [...], "sharedVpcEndpoints": [...]} (the Defenders lock
// construct writes it as lock.TrustMetadataKey). The review uses it only to label the lock's
// aws:SourceIp values that are trusted egress prefixes: a label never hides what the lock admits.
const TrustKey = contract.TrustMetadataKey

// trustedEgress returns the trusted egress prefixes that the Metadata of policy (a lock's policy
// resource, or nil) declares, rendered.
func trustedEgress(policy *resource) []string {
	if policy == nil {
		return nil
	}
	m, _ := policy.meta[TrustKey].(map[string]any)
	var out []string
	for _, v := range elems(m["egressPrefixes"]) {
		out = append(out, Render(v))
	}
	return out
}

// lockModeTag returns the value of the role's tag contract.LockModeTagKey (the mode the
// Defenders lock construct locked it in), rendered, or "".
func lockModeTag(role *resource) string {
	for _, el := range elems(role.props["Tags"]) {
		tag, _ := el.(map[string]any)
		if k, ok := literal(role.st, tag["Key"]); ok && k == LockModeTagKey {
			return Render(tag["Value"])
		}
	}
	return ""
}
