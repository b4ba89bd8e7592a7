package review

import (
	"fmt"
	"slices"
)

// attachedDoc is a policy document attached to a role.
type attachedDoc struct {
	st     *Stack
	doc    map[string]any
	source string
	res    *resource
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
