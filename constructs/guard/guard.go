// Package guard turns `cdk synth` into a policy check for CI. guard.Add(scope) inspects every
// resource under scope once all aspects (lock.Everything among them) have run, and adds error
// annotations, which make `cdk synth` fail, for:
//
//   - SSH (22), RDP (3389) or all-ports ingress from 0.0.0.0/0 or ::/0;
//   - instances and launch templates that allow IMDSv1;
//   - roles assumable by EC2 without a lock and without an exemption (lock.Exempt);
//   - a lock that references the public IP of an instance that does not use the locked role;
//
// and warnings (errors with `cdk synth --strict`) for SSH sources wider than /24 (IPv4) or /64
// (IPv6). Every finding names the construct path and how to fix it.
//
// The checks run as a construct validation rather than an aspect: CDK invokes aspects node by
// node, so an aspect could look at a role before lock.Everything has locked it; validations run
// after every aspect, on the finished tree. Locks and roles are matched within one stack.
package guard

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/internal/annotate"
)

// ExemptMetadataKey is the Metadata key lock.Exempt writes on a role (kept equal to
// lock.ExemptMetadataKey; guard does not import lock so that either can be used alone).
const ExemptMetadataKey = "defenders:exempt"

// Finding is one problem found by the guard.
type Finding struct {
	// Path is the construct path of the offending resource.
	Path string
	// Error is true for errors (synth fails), false for warnings.
	Error bool
	// Message says what is wrong and how to fix it.
	Message string
}

// Add checks every resource under scope when the app is synthesized and annotates findings.
func Add(scope constructs.IConstruct) {
	scope.Node().AddValidation(&validation{scope: scope})
}

// Check returns the findings for scope without annotating (for tests and tools).
func Check(scope constructs.IConstruct) []Finding {
	var out []Finding
	stacks := map[string]*model{}
	var order []string
	for _, n := range *scope.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		r, ok := n.(awscdk.CfnResource)
		if !ok {
			continue
		}
		st := awscdk.Stack_Of(r)
		key := *st.Node().Addr()
		m, ok := stacks[key]
		if !ok {
			m = &model{stack: st, byID: map[string]*resource{}}
			stacks[key] = m
			order = append(order, key)
		}
		m.add(r)
	}
	for _, k := range order {
		out = append(out, stacks[k].check()...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

type validation struct{ scope constructs.IConstruct }

// Validate implements constructs.IValidation. It reports through annotations (so that the CDK
// CLI prints them with the construct path and `--strict` applies to warnings) and returns no
// message of its own.
func (v *validation) Validate() *[]*string {
	for _, f := range Check(v.scope) {
		target := findByPath(v.scope, f.Path)
		if f.Error {
			awscdk.Annotations_Of(target).AddError(jsii.String(f.Message))
		} else {
			annotate.Warning(target, "defenders:guard", f.Message)
		}
	}
	return &[]*string{}
}

func findByPath(scope constructs.IConstruct, path string) constructs.IConstruct {
	for _, n := range *scope.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		if *n.Node().Path() == path {
			return n
		}
	}
	return scope
}

// resource is a CloudFormation resource with the properties the checks need, resolved.
type resource struct {
	id, path string
	node     awscdk.CfnResource
	typ      string
}

type model struct {
	stack awscdk.Stack
	res   []*resource
	byID  map[string]*resource
}

func (m *model) resolve(v any) any {
	if v == nil {
		return nil
	}
	out := m.stack.Resolve(v)
	// Round-trip through JSON so that every value is a plain map/slice/string/float64.
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	var plain any
	if json.Unmarshal(b, &plain) != nil {
		return nil
	}
	return plain
}

func (m *model) add(r awscdk.CfnResource) {
	id, _ := m.resolve(m.stack.GetLogicalId(r)).(string)
	x := &resource{id: id, path: *r.Node().Path(), node: r, typ: *r.CfnResourceType()}
	m.res = append(m.res, x)
	m.byID[id] = x
}

func (m *model) check() []Finding {
	var out []Finding
	roleOfProfile := map[string][]string{} // instance profile id -> role ids
	for _, r := range m.res {
		if p, ok := r.node.(awsiam.CfnInstanceProfile); ok {
			roleOfProfile[r.id] = refs(m.resolve(p.Roles()))
		}
	}
	instancesOfRole := map[string][]string{} // role id -> instance ids
	locked := map[string][]*resource{}       // role id -> lock policies
	for _, r := range m.res {
		switch n := r.node.(type) {
		case awsec2.CfnSecurityGroup:
			rules, _ := m.resolve(n.SecurityGroupIngress()).([]any)
			for _, rule := range rules {
				if rm, ok := rule.(map[string]any); ok {
					out = append(out, ingressFindings(r.path, rm)...)
				}
			}
		case awsec2.CfnSecurityGroupIngress:
			out = append(out, ingressFindings(r.path, map[string]any{
				"cidrIp": m.resolve(n.CidrIp()), "cidrIpv6": m.resolve(n.CidrIpv6()), "ipProtocol": m.resolve(n.IpProtocol()),
				"fromPort": m.resolve(n.FromPort()), "toPort": m.resolve(n.ToPort()),
			})...)
		case awsec2.CfnInstance:
			if !m.instanceRequiresIMDSv2(n) {
				out = append(out, Finding{Path: r.path, Error: true, Message: "defenders guard: instance " + r.path +
					" allows IMDSv1 (credentials readable with a plain GET, e.g. through SSRF); set requireImdsv2: true " +
					"or a launch template with MetadataOptions.HttpTokens = required"})
			}
			for _, p := range refs([]any{m.resolve(n.IamInstanceProfile())}) {
				for _, role := range roleOfProfile[p] {
					instancesOfRole[role] = append(instancesOfRole[role], r.id)
				}
			}
		case awsec2.CfnLaunchTemplate:
			data, _ := m.resolve(n.LaunchTemplateData()).(map[string]any)
			if httpTokens(data) != "required" {
				out = append(out, Finding{Path: r.path, Error: true, Message: "defenders guard: launch template " + r.path +
					" allows IMDSv1; set MetadataOptions.HttpTokens = required (requireImdsv2 on the L2 construct)"})
			}
		case awsiam.CfnPolicy:
			doc := m.resolve(n.PolicyDocument())
			if isLock(doc) {
				for _, role := range refs(m.resolve(n.Roles())) {
					locked[role] = append(locked[role], r)
				}
			}
		}
	}
	for _, r := range m.res {
		role, ok := r.node.(awsiam.CfnRole)
		if !ok || !trustsEC2(m.resolve(role.AssumeRolePolicyDocument())) {
			continue
		}
		if reason, _ := role.GetMetadata(jsii.String(ExemptMetadataKey)).(string); reason != "" {
			continue
		}
		if len(locked[r.id]) == 0 && !lockedInline(m.resolve(role.Policies())) {
			out = append(out, Finding{Path: r.path, Error: true, Message: "defenders guard: role " + r.path +
				" can be assumed by EC2 but has no lock: add lock.Everything(scope, nil) (or lock.New), or exempt it with " +
				"lock.Exempt(instance, \"why\")"})
		}
		for _, pol := range locked[r.id] {
			for _, inst := range publicIPRefs(m.resolve(pol.node.(awsiam.CfnPolicy).PolicyDocument())) {
				if x := m.byID[inst]; x == nil || x.typ != "AWS::EC2::Instance" || contains(instancesOfRole[r.id], inst) {
					continue // an Elastic IP or NAT address, or the role's own instance
				}
				{
					out = append(out, Finding{Path: pol.path, Error: true, Message: fmt.Sprintf(
						"defenders guard: lock %s on role %s admits the public IP of instance %s, which does not use that role; "+
							"lock each role to its own instances", pol.path, r.path, inst)})
				}
			}
		}
	}
	return out
}

func (m *model) instanceRequiresIMDSv2(n awsec2.CfnInstance) bool {
	spec, _ := m.resolve(n.LaunchTemplate()).(map[string]any)
	if spec == nil {
		return false
	}
	name := spec["launchTemplateName"]
	var ltID string
	if ga, ok := spec["launchTemplateId"].(map[string]any); ok {
		if a, ok := ga["Fn::GetAtt"].([]any); ok && len(a) > 0 {
			ltID, _ = a[0].(string)
		}
		if s, ok := ga["Ref"].(string); ok {
			ltID = s
		}
	}
	for _, r := range m.res {
		lt, ok := r.node.(awsec2.CfnLaunchTemplate)
		if !ok {
			continue
		}
		if (name != nil && m.resolve(lt.LaunchTemplateName()) == name) || (ltID != "" && r.id == ltID) {
			data, _ := m.resolve(lt.LaunchTemplateData()).(map[string]any)
			return httpTokens(data) == "required"
		}
	}
	return false
}

func httpTokens(data map[string]any) string {
	md, _ := get(data, "metadataOptions").(map[string]any)
	s, _ := get(md, "httpTokens").(string)
	return s
}

// get reads key from m in camelCase (L1 props) or PascalCase (CloudFormation) spelling.
func get(m map[string]any, key string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[key]; ok {
		return v
	}
	return m[strings.ToUpper(key[:1])+key[1:]]
}

func ingressFindings(path string, rule map[string]any) []Finding {
	proto := fmt.Sprint(get(rule, "ipProtocol"))
	from, fok := number(get(rule, "fromPort"))
	to, tok := number(get(rule, "toPort"))
	all := proto == "-1" || proto == "all" || (fok && tok && from <= 0 && to >= 65535)
	covers := func(port float64) bool {
		return all || ((proto == "tcp" || proto == "6") && fok && tok && from <= port && port <= to)
	}
	var out []Finding
	for _, k := range []string{"cidrIp", "cidrIpv6"} {
		cidr, ok := get(rule, k).(string)
		if !ok {
			continue
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			continue // tokens and prefix lists are not checked here
		}
		what := ""
		switch {
		case all:
			what = "all ports"
		case covers(22):
			what = "SSH (22)"
		case covers(3389):
			what = "RDP (3389)"
		}
		if what == "" {
			continue
		}
		if p.Bits() == 0 {
			out = append(out, Finding{Path: path, Error: true, Message: fmt.Sprintf(
				"defenders guard: %s allows %s from %s, the whole internet; allow only your own address "+
					"(defenders:sshCidr, or Peer.ipv4(\"<your-ip>/32\"))", path, what, cidr)})
		} else if covers(22) && ((p.Addr().Is4() && p.Bits() < 24) || (p.Addr().Is6() && p.Bits() < 64)) {
			out = append(out, Finding{Path: path, Message: fmt.Sprintf(
				"defenders guard: %s allows SSH from %s, wider than /24 (IPv4) or /64 (IPv6); narrow it to the addresses you use", path, cidr)})
		}
	}
	return out
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		var f float64
		_, err := fmt.Sscan(x, &f)
		return f, err == nil
	}
	return 0, false
}

// refs returns the logical ids of {"Ref": id} entries in a list.
func refs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if id, ok := m["Ref"].(string); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

func trustsEC2(doc any) bool {
	b, _ := json.Marshal(doc)
	return strings.Contains(string(b), "ec2.amazonaws.com")
}

// isLock reports whether a policy document denies on the network-origin keys a lock uses.
func isLock(doc any) bool {
	m, _ := doc.(map[string]any)
	stmts, _ := get(m, "statement").([]any)
	for _, s := range stmts {
		sm, _ := s.(map[string]any)
		if get(sm, "effect") != "Deny" {
			continue
		}
		b, _ := json.Marshal(get(sm, "condition"))
		if strings.Contains(string(b), "aws:SourceIp") || strings.Contains(string(b), "aws:SourceVpc") {
			return true
		}
	}
	return false
}

func lockedInline(policies any) bool {
	list, _ := policies.([]any)
	for _, p := range list {
		pm, _ := p.(map[string]any)
		if isLock(get(pm, "policyDocument")) {
			return true
		}
	}
	return false
}

// publicIPRefs lists the instance logical ids whose PublicIp a document references.
func publicIPRefs(doc any) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if a, ok := x["Fn::GetAtt"].([]any); ok && len(a) == 2 && a[1] == "PublicIp" {
				if id, ok := a[0].(string); ok {
					out = append(out, id)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
