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
	typeNodegroup     = "AWS::EKS::Nodegroup"
	typePrefixList    = "AWS::EC2::PrefixList"
)

// Kinds of Instance.
const (
	kindInstance  = "instance"
	kindASG       = "Auto Scaling group"
	kindNodegroup = "EKS node group"
)

// analyzer holds the indexes of one Analyze call.
type analyzer struct {
	rv     *resolver
	ev     *evaluator
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

	// profileOutside describes, per instance profile, the roles it can hold that are not
	// roles of the assembly (DEF-ROLE-1).
	profileOutside map[*resource][]string
	// mpByName indexes customer managed policies by ManagedPolicyName.
	mpByName map[string]*resource
	// acks holds the valid acknowledgements of each resource (ack.go).
	acks map[*resource][]ack
	// idsOf maps a resource to the ids of the findings about it.
	idsOf map[*resource][]string
	// sgUsers maps security groups to the computes that use them (built by reach).
	sgUsers map[*resource][]*compute
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
	// envs are the decisions (parameters, conditions) under which the rule exists: one
	// empty environment for a rule that always does.
	envs []env
}

// compute is an instance or Auto Scaling group under analysis.
type compute struct {
	inst Instance
	res  *resource
	role *resource
	sgs  []*resource
	imds imdsVerdict
	// unjudged says why the role cannot be judged (DEF-ROLE-1), or "".
	unjudged string
	profile  *resource
	// remoteSSH are the outcomes in which an EKS node group's RemoteAccess opens SSH to the
	// internet (an Ec2SshKey without SourceSecurityGroups).
	remoteSSH []env
}

// Analyze reviews the assembly and returns the report.
func Analyze(a *Assembly) *Report {
	z := &analyzer{
		rv:            newResolver(a.Stacks),
		ev:            newEvaluator(),
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
		mpByName:      map[string]*resource{},
	}
	rep := &Report{Source: a.Path, Stacks: []StackInfo{}, Roles: []Role{}, OtherInstances: []Instance{}, Findings: []Finding{}, Acknowledged: []Finding{}}
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
	z.readAcks(a.Stacks)

	for _, r := range z.byType[typeRole] {
		// A role an instance profile gives to instances of the assembly counts even if
		// the review cannot read EC2 in its trust policy: fail closed.
		if !trustsEC2(r) && len(z.usersOf[r]) == 0 {
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
			if mp := z.managedPolicyOf(r.st, arn); mp != nil {
				role.ManagedPolicies = append(role.ManagedPolicies, display(mp))
				continue
			}
			role.ManagedPolicies = append(role.ManagedPolicies, Render(arn))
		}
		if a, ok := z.ackOf(r, RuleUnlockedRole); ok {
			role.Exemption = a.reason
		}
		role.Lock = z.lock(r)
		rep.Roles = append(rep.Roles, role)
	}
	z.ingressFindings()
	z.imdsFindings()
	z.roleFindings()
	// Nested stacks whose template the loader could not read (load.go).
	for _, r := range z.byType[typeNestedStack] {
		if r.unreviewed != "" {
			z.addFinding(RuleUnreviewedStack, r, nil, "nested stack `%s` was not reviewed: %s, so nothing it deploys was judged; review its template too (pass the directory or the cloud assembly that holds it).", display(r), r.unreviewed)
		}
	}

	active, acked := z.splitAcknowledged(z.findings)
	rep.Findings = numberFindings(active)
	rep.Acknowledged = numberAcknowledged(acked)
	z.idsOf = map[*resource][]string{}
	for _, fs := range [][]Finding{rep.Findings, rep.Acknowledged} {
		for _, f := range fs {
			for _, r := range f.subjects {
				if ids := z.idsOf[r]; len(ids) == 0 || ids[len(ids)-1] != f.ID {
					z.idsOf[r] = append(ids, f.ID)
				}
			}
		}
	}
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
		ids := slices.Clone(z.idsOf[role.res])
		for _, c := range z.usersOf[role.res] {
			role.Instances = append(role.Instances, z.instance(c))
			ids = append(ids, z.idsOf[c.res]...)
		}
		role.Findings = orderIDs(ids)
	}
	for _, c := range z.computes {
		if c.role == nil || !ec2Roles[c.role] {
			rep.OtherInstances = append(rep.OtherInstances, z.instance(c))
		}
	}
	slices.SortFunc(rep.Roles, func(a, b Role) int {
		return cmp.Or(strings.Compare(a.Stack, b.Stack), strings.Compare(a.Path, b.Path), strings.Compare(a.LogicalID, b.LogicalID))
	})
	return rep
}

// instance finalizes a compute entry for the report.
func (z *analyzer) instance(c *compute) Instance {
	in := c.inst
	in.Findings = orderIDs(slices.Clone(z.idsOf[c.res]))
	return in
}

// indexNames indexes resources by their literal physical names, for
// templates that refer to them by name instead of Ref.
func (z *analyzer) indexNames() {
	for typ, prop := range map[string]string{
		typeRole: "RoleName", typeProfile: "InstanceProfileName", typeLaunchTmpl: "LaunchTemplateName",
		typeLaunchConfig: "LaunchConfigurationName", typeSG: "GroupName", typeManagedPolicy: "ManagedPolicyName",
	} {
		idx := map[string]map[string]*resource{
			typeRole: z.roleByName, typeProfile: z.profileByName, typeLaunchTmpl: z.ltByName,
			typeLaunchConfig: z.lcByName, typeSG: z.sgByName, typeManagedPolicy: z.mpByName,
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
	z.profileOutside = map[*resource][]string{}
	for _, p := range z.byType[typeProfile] {
		for _, el := range elems(p.props["Roles"]) {
			roles, outside := z.candidates(p.st, el, typeRole)
			for _, role := range roles {
				if !slices.Contains(z.profileRoles[p], role) {
					z.profileRoles[p] = append(z.profileRoles[p], role)
				}
			}
			for _, o := range outside {
				if !slices.Contains(z.profileOutside[p], o) {
					z.profileOutside[p] = append(z.profileOutside[p], o)
				}
			}
		}
	}
}

// indexPolicies maps roles to the policy documents attached to them: AWS::IAM::Policy and
// AWS::IAM::ManagedPolicy resources naming the role in Roles, AWS::IAM::RolePolicy resources
// naming it in RoleName, the role's inline Policies, and the customer managed policies of
// its ManagedPolicyArns. Documents may be objects or JSON strings (docOf).
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
	docs := map[*resource]map[string]any{}
	docOfRes := func(p *resource) map[string]any {
		if d, ok := docs[p]; ok {
			return d
		}
		d := docOf(p.st, p.props["PolicyDocument"])
		docs[p] = d
		return d
	}
	for _, typ := range []string{typePolicy, typeManagedPolicy} {
		for _, p := range z.byType[typ] {
			doc := docOfRes(p)
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
	for _, p := range z.byType[typeRolePolicy] {
		if doc := docOfRes(p); doc != nil {
			if role := z.resolveTo(p.st, p.props["RoleName"], typeRole, z.roleByName); role != nil {
				attach(role, attachedDoc{st: p.st, doc: doc, source: display(p), res: p})
			}
		}
	}
	for _, role := range z.byType[typeRole] {
		for i, pol := range elems(role.props["Policies"]) {
			pm, _ := pol.(map[string]any)
			doc := docOf(role.st, pm["PolicyDocument"])
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
			if mp := z.managedPolicyOf(role.st, arn); mp != nil {
				if doc := docOfRes(mp); doc != nil {
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
		groups := z.groupProps(r.st, r.props, "GroupSet", "SecurityGroupIds", "SecurityGroups")
		if len(groups) == 0 && lt != nil {
			groups = z.ltGroups(lt.st, ltData)
		}
		c.setGroups(z, groups, suffixDefaultSG)
		ltLayer := imdsLayer{src: "launch template", st: r.st, props: ltData}
		if lt != nil {
			ltLayer.st, ltLayer.res = lt.st, lt
		}
		c.setIMDS(imdsLayer{src: "instance", st: r.st, props: r.props, res: r}, ltLayer)
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
			c.setGroups(z, z.ltGroups(lt.st, data), suffixDefaultSG)
		} else if lc := z.resolveTo(r.st, r.props["LaunchConfigurationName"], typeLaunchConfig, z.lcByName); lc != nil {
			c.inst.LaunchTemplate = lc.id
			data = lc.props
			lcUsed = true
			if p, ok := lc.props["IamInstanceProfile"]; ok {
				c.setProfile(z, lc.st, p)
			}
			c.setGroups(z, z.groupProps(lc.st, lc.props, "", "SecurityGroups"), suffixDefaultSG)
		} else {
			c.setGroups(z, nil, suffixDefaultSG)
		}
		layer := imdsLayer{src: "launch template", st: r.st, props: data}
		switch {
		case lcUsed:
			layer.src = "launch configuration"
		case c.inst.LaunchTemplate == "":
			layer.src = "Auto Scaling group"
		}
		if lt := z.launchTemplate(r.st, spec); lt != nil {
			layer.st, layer.res = lt.st, lt
		} else if lc := z.resolveTo(r.st, r.props["LaunchConfigurationName"], typeLaunchConfig, z.lcByName); lcUsed && lc != nil {
			layer.st, layer.res = lc.st, lc
		}
		c.setIMDS(layer)
		z.addCompute(c)
	}
	for _, r := range z.byType[typeNodegroup] {
		// An EKS managed node group: its launch template (if any) gives the groups and
		// IMDS settings; without groups there, EKS attaches the cluster security group.
		c := &compute{res: r, inst: Instance{Kind: kindNodegroup}}
		layer := imdsLayer{src: kindNodegroup, st: r.st}
		if lt := z.launchTemplate(r.st, r.props["LaunchTemplate"]); lt != nil {
			c.inst.LaunchTemplate = lt.id
			data, _ := lt.props["LaunchTemplateData"].(map[string]any)
			layer = imdsLayer{src: "launch template", st: lt.st, props: data, res: lt}
		}
		c.setGroups(z, z.ltGroups(layer.st, layer.props), "EKS cluster security group"+suffixNotInAssembly)
		c.setNodeRole(z, r.st, r.props["NodeRole"])
		c.remoteSSH = z.remoteSSH(r)
		c.setIMDS(layer)
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
	if slices.ContainsFunc(c.remoteSSH, env.isDefault) {
		c.inst.Ingress = append(c.inst.Ingress, Ingress{
			SecurityGroup: "remote access group EKS creates", Stack: c.res.st.Name, Resource: c.res.id,
			Protocol: "tcp", Ports: "22", Source: "0.0.0.0/0", SourceType: "cidr",
			Description: "RemoteAccess with an Ec2SshKey and no SourceSecurityGroups",
		})
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
	// Auto Scaling groups and instances name LaunchTemplateId or LaunchTemplateName; EKS node
	// groups name Id or Name.
	for _, k := range []string{"LaunchTemplateId", "LaunchTemplateName", "Id", "Name", "Version"} {
		if v, ok := m[k]; ok {
			if lt := z.resolveTo(st, v, typeLaunchTmpl, z.ltByName); lt != nil {
				return lt
			}
		}
	}
	return nil
}

// groupSrc is a property value that lists security groups, with the stack it is read in.
type groupSrc struct {
	st *Stack
	v  any
}

// ltGroups returns the properties of launch template data that list security groups:
// SecurityGroupIds, SecurityGroups and the Groups of each network interface.
func (z *analyzer) ltGroups(st *Stack, data map[string]any) []groupSrc {
	return z.groupProps(st, data, "Groups", "SecurityGroupIds", "SecurityGroups")
}

// groupProps returns the properties of props that list security groups: the keys given, and
// niKey of each of its NetworkInterfaces (GroupSet for instances, Groups in launch template
// data; "" for none), the interfaces being any an Fn::If can choose.
func (z *analyzer) groupProps(st *Stack, props map[string]any, niKey string, keys ...string) []groupSrc {
	var out []groupSrc
	for _, k := range keys {
		if v, ok := props[k]; ok && v != nil {
			out = append(out, groupSrc{st, v})
		}
	}
	if niKey != "" && props["NetworkInterfaces"] != nil {
		for _, it := range z.ev.items(st, props["NetworkInterfaces"], []env{nil}) {
			if it.v.kind == vObj && it.v.obj[niKey] != nil {
				out = append(out, groupSrc{st, it.v.obj[niKey]})
			}
		}
	}
	return out
}

// setProfile resolves the instance profile and its role.
func (c *compute) setProfile(z *analyzer, st *Stack, v any) {
	if v == nil {
		return
	}
	profiles, outside := z.candidates(st, v, typeProfile)
	var why []string
	if len(outside) > 0 {
		verb := "can be "
		if len(outside) == 1 && len(profiles) == 0 {
			verb = "is "
		}
		why = append(why, "its instance profile "+verb+strings.Join(outside, ", or "))
	}
	if len(profiles) == 0 {
		c.inst.InstanceProfile = unresolvedText(v)
		c.unjudged = strings.Join(why, "; ")
		return
	}
	p := profiles[0]
	c.inst.InstanceProfile = display(p)
	c.profile = p
	if roles := z.profileRoles[p]; len(roles) > 0 {
		c.role = roles[0]
	}
	if o := z.profileOutside[p]; len(o) > 0 {
		verb := "can hold role "
		if len(o) == 1 && len(z.profileRoles[p]) == 0 {
			verb = "holds role "
		}
		why = append(why, "its instance profile `"+display(p)+"` "+verb+strings.Join(o, ", or "))
	} else if len(z.profileRoles[p]) == 0 {
		why = append(why, "its instance profile `"+display(p)+"` holds no role the review can read")
	}
	c.unjudged = strings.Join(why, "; ")
}

// setGroups resolves the security groups the properties list (every group a condition or
// parameter can put there), keeping unresolved ones as text; without any, the instance gets
// the group named by dflt.
func (c *compute) setGroups(z *analyzer, srcs []groupSrc, dflt string) {
	c.inst.SecurityGroups = []string{}
	seen := map[*resource]bool{}
	shown := map[string]bool{}
	n := 0
	for _, src := range srcs {
		for _, it := range z.ev.items(src.st, src.v, []env{nil}) {
			n++
			st, g := it.v.st, it.v.raw
			if lit, ok := it.v.literal(); ok {
				st, g = src.st, lit
			} else if g == nil {
				st, g = src.st, src.v
			}
			if sg := z.resolveTo(st, g, typeSG, z.sgByName); sg != nil {
				if !seen[sg] {
					seen[sg] = true
					c.sgs = append(c.sgs, sg)
					c.inst.SecurityGroups = append(c.inst.SecurityGroups, display(sg))
				}
				continue
			}
			if t := unresolvedText(g); !shown[t] {
				shown[t] = true
				c.inst.SecurityGroups = append(c.inst.SecurityGroups, t)
			}
		}
	}
	if n == 0 {
		c.inst.SecurityGroups = append(c.inst.SecurityGroups, dflt)
	}
	slices.Sort(c.inst.SecurityGroups)
}

// setNodeRole resolves an EKS node group's NodeRole (an ARN: Fn::GetAtt Role.Arn, or a
// literal ARN whose role name the template defines).
func (c *compute) setNodeRole(z *analyzer, st *Stack, v any) {
	if v == nil {
		return
	}
	role := z.resolveTo(st, v, typeRole, nil)
	if s, ok := v.(string); ok && role == nil {
		if _, name, found := strings.Cut(s, ":role/"); found {
			role = z.roleByName[name[strings.LastIndex(name, "/")+1:]]
		}
	}
	if role == nil {
		c.inst.InstanceProfile = "node role " + unresolvedText(v)
		c.unjudged = "its node role `" + Render(v) + "` is not a role of this assembly"
		return
	}
	c.role = role
}

// remoteSSH returns the outcomes in which an EKS node group's RemoteAccess has an Ec2SshKey
// and no SourceSecurityGroups: EKS then opens SSH (tcp 22) on the nodes to 0.0.0.0/0.
func (z *analyzer) remoteSSH(r *resource) []env {
	var out []env
	for _, e0 := range z.ev.exists(r) {
		for _, o := range z.ev.values(r.st, r.props["RemoteAccess"], e0) {
			if o.v.kind != vObj {
				continue
			}
			for _, f := range z.ev.fields(r.st, o.v.obj, []string{"Ec2SshKey", "SourceSecurityGroups"}, o.e) {
				key, srcs := f.vals["Ec2SshKey"], f.vals["SourceSecurityGroups"]
				if k, ok := key.literal(); key.kind == vNoValue || (ok && k == "") {
					continue
				}
				if srcs.kind == vNoValue || (srcs.kind == vList && len(srcs.list) == 0) {
					out = append(out, f.e)
				}
			}
		}
	}
	return out
}

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

// orderIDs sorts and deduplicates finding ids: E1, E2, E10, W1, A1.
func orderIDs(ids []string) []string {
	rank := func(id string) int { return strings.Index("EWA", id[:1]) }
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	ids = slices.Compact(ids)
	if ids == nil {
		return []string{}
	}
	return ids
}
