package review

import (
	"cmp"
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
		role.LockModeTag = lockModeTag(r)
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
