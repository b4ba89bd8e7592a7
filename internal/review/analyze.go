package review

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Resource types the analysis reads.
const (
	typeRole          = "AWS::IAM::Role"
	typePolicy        = "AWS::IAM::Policy"
	typeManagedPolicy = "AWS::IAM::ManagedPolicy"
	typeProfile       = "AWS::IAM::InstanceProfile"
	typeInstance      = "AWS::EC2::Instance"
	typeLaunchTmpl    = "AWS::EC2::LaunchTemplate"
	typeLaunchConfig  = "AWS::AutoScaling::LaunchConfiguration"
	typeASG           = "AWS::AutoScaling::AutoScalingGroup"
	typeSG            = "AWS::EC2::SecurityGroup"
	typeSGIngress     = "AWS::EC2::SecurityGroupIngress"
	typeEIP           = "AWS::EC2::EIP"
	typeEIPAssoc      = "AWS::EC2::EIPAssociation"
	typeNAT           = "AWS::EC2::NatGateway"
	typeVPC           = "AWS::EC2::VPC"
)

// Kinds of Instance.
const (
	kindInstance = "instance"
	kindASG      = "Auto Scaling group"
)

// analyzer holds the indexes of one Analyze call.
type analyzer struct {
	rv     *resolver
	byType map[string][]*resource

	roleByName    map[string]*resource
	profileByName map[string]*resource
	ltByName      map[string]*resource
	lcByName      map[string]*resource
	sgByName      map[string]*resource

	profileRoles map[*resource][]*resource
	roleDocs     map[*resource][]attachedDoc
	natOfEIP     map[*resource]*resource
	instOfEIP    map[*resource]*resource
	sgRules      map[*resource][]rule

	computes  []*compute
	findings  []*Finding
	usersOf   map[*resource][]*compute
	computeOf map[*resource]*compute
}

// attachedDoc is a policy document attached to a role.
type attachedDoc struct {
	st     *Stack
	doc    map[string]any
	source string
	res    *resource
}

// rule is an ingress rule with the raw values the findings need.
type rule struct {
	Ingress
	sg     *resource
	origin *resource
	raw    map[string]any
}

// compute is an instance or Auto Scaling group under analysis.
type compute struct {
	inst    Instance
	res     *resource
	role    *resource
	sgs     []*resource
	httpTok any
	imdsSrc string
}

// Analyze reviews the assembly and returns the report.
func Analyze(a *Assembly) *Report {
	z := &analyzer{
		rv:            newResolver(a.Stacks),
		byType:        map[string][]*resource{},
		roleByName:    map[string]*resource{},
		profileByName: map[string]*resource{},
		ltByName:      map[string]*resource{},
		lcByName:      map[string]*resource{},
		sgByName:      map[string]*resource{},
		profileRoles:  map[*resource][]*resource{},
		roleDocs:      map[*resource][]attachedDoc{},
		natOfEIP:      map[*resource]*resource{},
		instOfEIP:     map[*resource]*resource{},
		sgRules:       map[*resource][]rule{},
		usersOf:       map[*resource][]*compute{},
		computeOf:     map[*resource]*compute{},
	}
	rep := &Report{Source: a.Path, Stacks: []StackInfo{}, Roles: []Role{}, OtherInstances: []Instance{}, Findings: []Finding{}}
	for _, st := range a.Stacks {
		rep.Stacks = append(rep.Stacks, StackInfo{Name: st.Name, File: st.File, Parent: st.Parent})
		for _, id := range sortedKeys(st.resources) {
			r := st.resources[id]
			z.byType[r.typ] = append(z.byType[r.typ], r)
		}
	}
	z.indexNames()
	z.indexProfiles()
	z.indexPolicies()
	z.indexAddresses()
	z.indexIngress()
	z.buildComputes()

	for _, r := range z.byType[typeRole] {
		if !trustsEC2(r) {
			continue
		}
		role := Role{
			Stack:           r.st.Name,
			LogicalID:       r.id,
			Path:            cdkPath(r),
			ManagedPolicies: []string{},
			Instances:       []Instance{},
			Findings:        []string{},
			res:             r,
		}
		for _, arn := range elems(r.props["ManagedPolicyArns"]) {
			if mp := z.resolveTo(r.st, arn, typeManagedPolicy, nil); mp != nil {
				role.ManagedPolicies = append(role.ManagedPolicies, display(mp))
				continue
			}
			role.ManagedPolicies = append(role.ManagedPolicies, Render(arn))
		}
		if reason, ok := r.meta[ExemptKey].(string); ok {
			role.Exemption = strings.TrimSpace(reason)
		}
		role.Lock = z.lock(r, role.Exemption)
		rep.Roles = append(rep.Roles, role)
	}
	z.ingressFindings()
	z.imdsFindings()

	rep.Findings = numberFindings(z.findings)
	for _, f := range rep.Findings {
		if f.Severity == SeverityError {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	ec2Roles := map[*resource]bool{}
	for i := range rep.Roles {
		role := &rep.Roles[i]
		ec2Roles[role.res] = true
		ids := findingIDs(rep.Findings, role.res)
		for _, c := range z.usersOf[role.res] {
			role.Instances = append(role.Instances, z.instance(c, rep.Findings))
			ids = append(ids, findingIDs(rep.Findings, c.res)...)
		}
		role.Findings = orderIDs(ids)
	}
	for _, c := range z.computes {
		if c.role == nil || !ec2Roles[c.role] {
			rep.OtherInstances = append(rep.OtherInstances, z.instance(c, rep.Findings))
		}
	}
	slices.SortFunc(rep.Roles, func(a, b Role) int {
		return cmp.Or(strings.Compare(a.Stack, b.Stack), strings.Compare(a.Path, b.Path), strings.Compare(a.LogicalID, b.LogicalID))
	})
	return rep
}

// instance finalizes a compute entry for the report.
func (z *analyzer) instance(c *compute, fs []Finding) Instance {
	in := c.inst
	in.Findings = orderIDs(findingIDs(fs, c.res))
	return in
}

// indexNames indexes resources by their literal physical names, for
// templates that refer to them by name instead of Ref.
func (z *analyzer) indexNames() {
	for typ, prop := range map[string]string{
		typeRole: "RoleName", typeProfile: "InstanceProfileName", typeLaunchTmpl: "LaunchTemplateName",
		typeLaunchConfig: "LaunchConfigurationName", typeSG: "GroupName",
	} {
		idx := map[string]map[string]*resource{
			typeRole: z.roleByName, typeProfile: z.profileByName, typeLaunchTmpl: z.ltByName,
			typeLaunchConfig: z.lcByName, typeSG: z.sgByName,
		}[typ]
		for _, r := range z.byType[typ] {
			if name, ok := literal(r.st, r.props[prop]); ok {
				if _, dup := idx[name]; !dup {
					idx[name] = r
				}
			}
		}
	}
}

// resolveTo resolves v (in stack st) to a resource of type typ, falling
// back to the literal-name index byName.
func (z *analyzer) resolveTo(st *Stack, v any, typ string, byName map[string]*resource) *resource {
	if r, ok := z.rv.resolve(st, v); ok && r.res.typ == typ {
		return r.res
	}
	if byName != nil {
		if s, ok := v.(string); ok {
			return byName[s]
		}
	}
	return nil
}

// indexProfiles maps instance profiles to their roles.
func (z *analyzer) indexProfiles() {
	for _, p := range z.byType[typeProfile] {
		for _, el := range elems(p.props["Roles"]) {
			if role := z.resolveTo(p.st, el, typeRole, z.roleByName); role != nil {
				z.profileRoles[p] = append(z.profileRoles[p], role)
			}
		}
	}
}

// indexPolicies maps roles to the policy documents attached to them.
func (z *analyzer) indexPolicies() {
	seen := map[*resource]map[*resource]bool{}
	attach := func(role *resource, d attachedDoc) {
		if d.res != nil {
			if seen[role] == nil {
				seen[role] = map[*resource]bool{}
			}
			if seen[role][d.res] {
				return
			}
			seen[role][d.res] = true
		}
		z.roleDocs[role] = append(z.roleDocs[role], d)
	}
	for _, typ := range []string{typePolicy, typeManagedPolicy} {
		for _, p := range z.byType[typ] {
			doc, _ := p.props["PolicyDocument"].(map[string]any)
			if doc == nil {
				continue
			}
			for _, el := range elems(p.props["Roles"]) {
				if role := z.resolveTo(p.st, el, typeRole, z.roleByName); role != nil {
					attach(role, attachedDoc{st: p.st, doc: doc, source: display(p), res: p})
				}
			}
		}
	}
	for _, role := range z.byType[typeRole] {
		for i, pol := range elems(role.props["Policies"]) {
			pm, _ := pol.(map[string]any)
			doc, _ := pm["PolicyDocument"].(map[string]any)
			if doc == nil {
				continue
			}
			name := Render(pm["PolicyName"])
			if pm["PolicyName"] == nil {
				name = fmt.Sprintf("#%d", i+1)
			}
			attach(role, attachedDoc{st: role.st, doc: doc, source: display(role) + " inline policy " + name})
		}
		for _, arn := range elems(role.props["ManagedPolicyArns"]) {
			if mp := z.resolveTo(role.st, arn, typeManagedPolicy, nil); mp != nil {
				if doc, _ := mp.props["PolicyDocument"].(map[string]any); doc != nil {
					attach(role, attachedDoc{st: mp.st, doc: doc, source: display(mp), res: mp})
				}
			}
		}
	}
}

// indexAddresses maps Elastic IPs to the NAT gateways and instances they
// belong to.
func (z *analyzer) indexAddresses() {
	for _, nat := range z.byType[typeNAT] {
		if eip := z.resolveTo(nat.st, nat.props["AllocationId"], typeEIP, nil); eip != nil {
			z.natOfEIP[eip] = nat
		}
	}
	for _, eip := range z.byType[typeEIP] {
		if in := z.resolveTo(eip.st, eip.props["InstanceId"], typeInstance, nil); in != nil {
			z.instOfEIP[eip] = in
		}
	}
	for _, as := range z.byType[typeEIPAssoc] {
		eip := z.resolveTo(as.st, as.props["AllocationId"], typeEIP, nil)
		if eip == nil {
			eip = z.resolveTo(as.st, as.props["EIP"], typeEIP, nil)
		}
		if in := z.resolveTo(as.st, as.props["InstanceId"], typeInstance, nil); eip != nil && in != nil {
			z.instOfEIP[eip] = in
		}
	}
}

// indexIngress collects the ingress rules of every security group.
func (z *analyzer) indexIngress() {
	for _, sg := range z.byType[typeSG] {
		for _, el := range elems(sg.props["SecurityGroupIngress"]) {
			if m, ok := el.(map[string]any); ok {
				if _, _, fn := intrinsic(m); !fn {
					z.sgRules[sg] = append(z.sgRules[sg], z.rule(sg, sg, m))
				}
			}
		}
	}
	for _, in := range z.byType[typeSGIngress] {
		sg := z.resolveTo(in.st, in.props["GroupId"], typeSG, nil)
		if sg == nil {
			sg = z.resolveTo(in.st, in.props["GroupName"], typeSG, z.sgByName)
		}
		z.sgRules[sg] = append(z.sgRules[sg], z.rule(sg, in, in.props))
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
func (z *analyzer) rule(sg, origin *resource, m map[string]any) rule {
	p := parseProtocol(m)
	r := rule{sg: sg, origin: origin, raw: m}
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

// Suffixes of values the review could not follow.
const (
	suffixUnresolved    = " (unresolved)"
	suffixNotInAssembly = " (not in this assembly)"
	suffixDefaultSG     = "default security group of the VPC (not in the template)"
)

// unresolvedText renders a value that could not be traced to a resource
// of the assembly, saying so.
func unresolvedText(v any) string {
	if _, ok := v.(string); ok {
		return Render(v) + suffixNotInAssembly
	}
	return Render(v) + suffixUnresolved
}

// buildComputes collects instances and Auto Scaling groups with their
// launch template, role, security groups and IMDS setting.
func (z *analyzer) buildComputes() {
	for _, r := range z.byType[typeInstance] {
		c := &compute{res: r, inst: Instance{Kind: kindInstance}}
		lt := z.launchTemplate(r.st, r.props["LaunchTemplate"])
		ltData := map[string]any{}
		if lt != nil {
			c.inst.LaunchTemplate = lt.id
			if d, ok := lt.props["LaunchTemplateData"].(map[string]any); ok {
				ltData = d
			}
		}
		// Instance properties override the launch template's.
		if v, ok := r.props["IamInstanceProfile"]; ok {
			c.setProfile(z, r.st, v)
		} else if v, ok := ltData["IamInstanceProfile"].(map[string]any); ok {
			c.setProfile(z, lt.st, cmp.Or(v["Arn"], v["Name"]))
		}
		var groups []any
		groups = append(groups, elems(r.props["SecurityGroupIds"])...)
		groups = append(groups, elems(r.props["SecurityGroups"])...)
		for _, ni := range elems(r.props["NetworkInterfaces"]) {
			if m, ok := ni.(map[string]any); ok {
				groups = append(groups, elems(m["GroupSet"])...)
			}
		}
		gst := r.st
		if len(groups) == 0 && lt != nil {
			groups, gst = ltGroups(ltData), lt.st
		}
		c.setGroups(z, gst, groups)
		c.httpTok, c.imdsSrc = metadataOption(r.props, "HttpTokens"), "instance"
		httpEndpoint := metadataOption(r.props, "HttpEndpoint")
		if c.httpTok == nil && lt != nil {
			c.httpTok, c.imdsSrc = metadataOption(ltData, "HttpTokens"), "launch template"
		}
		if httpEndpoint == nil {
			httpEndpoint = metadataOption(ltData, "HttpEndpoint")
		}
		c.setIMDS(httpEndpoint)
		z.addCompute(c)
	}
	for _, r := range z.byType[typeASG] {
		c := &compute{res: r, inst: Instance{Kind: kindASG}}
		spec := r.props["LaunchTemplate"]
		if mip, ok := r.props["MixedInstancesPolicy"].(map[string]any); ok && spec == nil {
			if lt, ok := mip["LaunchTemplate"].(map[string]any); ok {
				spec = lt["LaunchTemplateSpecification"]
			}
		}
		var data map[string]any
		lcUsed := false
		if lt := z.launchTemplate(r.st, spec); lt != nil {
			c.inst.LaunchTemplate = lt.id
			data, _ = lt.props["LaunchTemplateData"].(map[string]any)
			if p, ok := data["IamInstanceProfile"].(map[string]any); ok {
				c.setProfile(z, lt.st, cmp.Or(p["Arn"], p["Name"]))
			}
			c.setGroups(z, lt.st, ltGroups(data))
		} else if lc := z.resolveTo(r.st, r.props["LaunchConfigurationName"], typeLaunchConfig, z.lcByName); lc != nil {
			c.inst.LaunchTemplate = lc.id
			data = lc.props
			lcUsed = true
			if p, ok := lc.props["IamInstanceProfile"]; ok {
				c.setProfile(z, lc.st, p)
			}
			c.setGroups(z, lc.st, elems(lc.props["SecurityGroups"]))
		} else {
			c.setGroups(z, r.st, nil)
		}
		c.httpTok, c.imdsSrc = metadataOption(data, "HttpTokens"), "launch template"
		if lcUsed {
			c.imdsSrc = "launch configuration"
		}
		if c.inst.LaunchTemplate == "" {
			c.imdsSrc = "Auto Scaling group"
		}
		c.setIMDS(metadataOption(data, "HttpEndpoint"))
		z.addCompute(c)
	}
	slices.SortFunc(z.computes, func(a, b *compute) int {
		return cmp.Or(strings.Compare(a.inst.Stack, b.inst.Stack), strings.Compare(a.inst.Path, b.inst.Path),
			strings.Compare(a.inst.LogicalID, b.inst.LogicalID))
	})
}

// addCompute registers a compute entry and the ingress that reaches it.
func (z *analyzer) addCompute(c *compute) {
	c.inst.Stack, c.inst.LogicalID, c.inst.Path = c.res.st.Name, c.res.id, cdkPath(c.res)
	c.inst.Ingress = []Ingress{}
	var rules []rule
	for _, sg := range c.sgs {
		rules = append(rules, z.sgRules[sg]...)
	}
	slices.SortFunc(rules, compareRules)
	for _, r := range rules {
		c.inst.Ingress = append(c.inst.Ingress, r.Ingress)
	}
	z.computes = append(z.computes, c)
	z.computeOf[c.res] = c
	if c.role != nil {
		z.usersOf[c.role] = append(z.usersOf[c.role], c)
	}
}

// launchTemplate resolves a LaunchTemplate specification
// ({LaunchTemplateId | LaunchTemplateName, Version}) to its resource.
func (z *analyzer) launchTemplate(st *Stack, spec any) *resource {
	m, ok := spec.(map[string]any)
	if !ok {
		return nil
	}
	for _, k := range []string{"LaunchTemplateId", "LaunchTemplateName", "Version"} {
		if v, ok := m[k]; ok {
			if lt := z.resolveTo(st, v, typeLaunchTmpl, z.ltByName); lt != nil {
				return lt
			}
		}
	}
	return nil
}

// ltGroups returns the security groups of launch template data.
func ltGroups(data map[string]any) []any {
	var groups []any
	groups = append(groups, elems(data["SecurityGroupIds"])...)
	groups = append(groups, elems(data["SecurityGroups"])...)
	for _, ni := range elems(data["NetworkInterfaces"]) {
		if m, ok := ni.(map[string]any); ok {
			groups = append(groups, elems(m["Groups"])...)
		}
	}
	return groups
}

// metadataOption returns MetadataOptions[key] of a property map, or nil.
func metadataOption(props map[string]any, key string) any {
	mo, _ := props["MetadataOptions"].(map[string]any)
	return mo[key]
}

// setProfile resolves the instance profile and its role.
func (c *compute) setProfile(z *analyzer, st *Stack, v any) {
	if v == nil {
		return
	}
	p := z.resolveTo(st, v, typeProfile, z.profileByName)
	if p == nil {
		c.inst.InstanceProfile = unresolvedText(v)
		return
	}
	c.inst.InstanceProfile = display(p)
	if roles := z.profileRoles[p]; len(roles) > 0 {
		c.role = roles[0]
	}
}

// setGroups resolves security groups, keeping unresolved ones as text.
func (c *compute) setGroups(z *analyzer, st *Stack, groups []any) {
	c.inst.SecurityGroups = []string{}
	seen := map[*resource]bool{}
	for _, g := range groups {
		if sg := z.resolveTo(st, g, typeSG, z.sgByName); sg != nil {
			if !seen[sg] {
				seen[sg] = true
				c.sgs = append(c.sgs, sg)
				c.inst.SecurityGroups = append(c.inst.SecurityGroups, display(sg))
			}
			continue
		}
		c.inst.SecurityGroups = append(c.inst.SecurityGroups, unresolvedText(g))
	}
	if len(groups) == 0 {
		c.inst.SecurityGroups = append(c.inst.SecurityGroups, suffixDefaultSG)
	}
	slices.Sort(c.inst.SecurityGroups)
}

// setIMDS decides the IMDS setting from HttpTokens and HttpEndpoint.
func (c *compute) setIMDS(httpEndpoint any) {
	switch {
	case httpEndpoint == "disabled":
		c.inst.IMDS = IMDSDisabled
	case c.httpTok == "required":
		c.inst.IMDS = IMDSv2Required
	default:
		c.inst.IMDS = IMDSv1Allowed
	}
}

// ec2Service matches ec2.amazonaws.com (and its China and URLSuffix
// forms) as a whole word in a rendered principal.
var ec2Service = regexp.MustCompile(`(?:^|[^A-Za-z0-9.-])ec2\.(?:amazonaws\.com(?:\.cn)?|<url-suffix>)(?:$|[^A-Za-z0-9.-])`)

// trustsEC2 reports whether a role's trust policy allows EC2 to assume it.
func trustsEC2(r *resource) bool {
	doc, _ := r.props["AssumeRolePolicyDocument"].(map[string]any)
	for _, s := range statements(doc) {
		if s["Effect"] != "Allow" {
			continue
		}
		p, _ := s["Principal"].(map[string]any)
		for _, svc := range elems(p["Service"]) {
			if ec2Service.MatchString(Render(svc)) {
				return true
			}
		}
	}
	return false
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

// cdkPath returns the resource's construct path without a trailing
// "/Resource" or "/Default", or "".
func cdkPath(r *resource) string {
	p, _ := r.meta["aws:cdk:path"].(string)
	p = strings.TrimSuffix(p, "/Resource")
	return strings.TrimSuffix(p, "/Default")
}

// display names a resource for people: its construct path, or
// "<stack>/<logical id>".
func display(r *resource) string {
	if p := cdkPath(r); p != "" {
		return p
	}
	return r.st.Name + "/" + r.id
}

// addFinding records a finding of rule about origin, associated with subjects; its level is
// the rule's.
func (z *analyzer) addFinding(rule string, origin *resource, subjects []*resource, format string, args ...any) {
	z.findings = append(z.findings, &Finding{
		Rule: rule, Severity: levelOf(rule), Stack: origin.st.Name, Resource: origin.id,
		Message:  fmt.Sprintf(format, args...),
		subjects: append([]*resource{origin}, subjects...),
	})
}

// numberFindings sorts findings (errors first) and numbers them E1.., W1...
func numberFindings(fs []*Finding) []Finding {
	slices.SortFunc(fs, func(a, b *Finding) int {
		return cmp.Or(strings.Compare(string(a.Severity), string(b.Severity)), strings.Compare(a.Stack, b.Stack),
			strings.Compare(a.Resource, b.Resource), strings.Compare(a.Message, b.Message))
	})
	var merged []*Finding
	for _, f := range fs {
		if n := len(merged); n > 0 {
			last := merged[n-1]
			if last.Severity == f.Severity && last.Stack == f.Stack && last.Resource == f.Resource && last.Message == f.Message {
				last.subjects = append(last.subjects, f.subjects...)
				continue
			}
		}
		merged = append(merged, f)
	}
	out := make([]Finding, len(merged))
	var e, w int
	for i, f := range merged {
		out[i] = *f
		if f.Severity == SeverityError {
			e++
			out[i].ID = fmt.Sprintf("E%d", e)
		} else {
			w++
			out[i].ID = fmt.Sprintf("W%d", w)
		}
	}
	return out
}

// findingIDs returns the ids of the findings about r.
func findingIDs(fs []Finding, r *resource) []string {
	var ids []string
	for _, f := range fs {
		if slices.Contains(f.subjects, r) {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// orderIDs sorts and deduplicates finding ids: E1, E2, E10, W1.
func orderIDs(ids []string) []string {
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(strings.Compare(a[:1], b[:1]), cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	ids = slices.Compact(ids)
	if ids == nil {
		return []string{}
	}
	return ids
}
