package review

import (
	"cmp"
	"slices"
	"strings"
)

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
