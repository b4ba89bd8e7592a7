package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// lockerStatements are the statements constructs/locker gives the locker's
// role, rendered for account 111122223333, partition aws and the default
// path /defenders/. TestTheRoleStatementsAreTheConstructs keeps them in
// step with constructs/locker/locker.go.
var lockerStatements = []statement{
	{"WriteOwnLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		[]string{"arn:aws:logs:us-east-1:111122223333:log-group:LockerLogs:*"}, nil},
	{"ReadInstances", []string{"ec2:DescribeInstances"}, []string{"*"}, nil},
	{"ReadEgressRoutes", []string{"ec2:DescribeRouteTables", "ec2:DescribeNatGateways"}, []string{"*"}, nil},
	{"ReadElasticIPs", []string{"ec2:DescribeAddresses"}, []string{"*"}, nil},
	{"ListRoles", []string{"iam:ListRoles"}, []string{"*"}, nil},
	{"ReadInstanceProfiles", []string{"iam:GetInstanceProfile", "iam:ListInstanceProfilesForRole"},
		[]string{"arn:aws:iam::111122223333:instance-profile/*", "arn:aws:iam::111122223333:role/defenders/*"}, nil},
	// Before every write: is the role's stack (or its root) being deleted? See
	// "CloudFormation deletions" in internal/locker.
	{"ReadStacks", []string{"cloudformation:DescribeStackResources", "cloudformation:DescribeStacks"},
		[]string{"arn:aws:cloudformation:us-east-1:111122223333:stack/*"}, nil},
	{"MaintainLocksOnManagedRolesOnly", []string{"iam:GetRolePolicy", "iam:ListRolePolicies", "iam:PutRolePolicy"},
		[]string{"arn:aws:iam::111122223333:role/defenders/*"}, nil},
	{"ReadLockModes", []string{"iam:ListRoleTags"}, []string{"arn:aws:iam::111122223333:role/defenders/*"}, nil},
	{"ReadManagedPolicies", []string{"iam:ListAttachedRolePolicies"}, []string{"arn:aws:iam::111122223333:role/defenders/*"}, nil},
	// The last resort when no inline lock fits, and its undo: AWSDenyAll and no
	// other policy.
	{"AttachDenyAllOnManagedRolesOnly", []string{"iam:AttachRolePolicy"}, []string{"arn:aws:iam::111122223333:role/defenders/*"}, denyAllOnly},
	{"DetachDenyAllOnManagedRolesOnly", []string{"iam:DetachRolePolicy"}, []string{"arn:aws:iam::111122223333:role/defenders/*"}, denyAllOnly},
}

// denyAllArn is AWSDenyAll in partition aws.
const denyAllArn = "arn:aws:iam::aws:policy/AWSDenyAll"

// denyAllOnly is the condition of the attach and detach statements.
var denyAllOnly = map[string]any{"ArnEquals": map[string]any{"iam:PolicyARN": denyAllArn}}

// lockdownStatement is what constructs/internal/golambda.NewRole adds with
// Props.Lockdown: the function may assume roles under its own unique path
// (its own role), to lock its credentials.
var lockdownStatement = statement{"LockdownSelfAssume", []string{"sts:AssumeRole"},
	[]string{"arn:aws:iam::111122223333:role/defenders-lockdown/c8locker/*"}, nil}

// statement is an Allow statement.
type statement struct {
	sid       string
	actions   []string
	resources []string
	condition map[string]any
}

// lockerPolicy is lockerStatements, and extra, as one IAM policy document.
func lockerPolicy(t *testing.T, extra ...statement) json.RawMessage {
	t.Helper()
	var st []map[string]any
	for _, s := range append(slices.Clone(lockerStatements), extra...) {
		m := map[string]any{"Sid": s.sid, "Effect": "Allow", "Action": s.actions, "Resource": s.resources}
		if s.condition != nil {
			m["Condition"] = s.condition
		}
		st = append(st, m)
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": st})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const lockerPrincipal = "arn:aws:sts::111122223333:assumed-role/DefendersLockerRole/locker"

func TestTheRoleStatementsAreTheConstructs(t *testing.T) {
	var text string
	for _, file := range []string{filepath.Join("locker", "locker.go"), filepath.Join("internal", "golambda", "role.go")} {
		src, err := os.ReadFile(filepath.Join("..", "..", "constructs", file))
		if err != nil {
			t.Fatalf("read the construct: %v", err)
		}
		text += strings.Join(strings.Fields(string(src)), " ")
	}
	for _, s := range append(slices.Clone(lockerStatements), lockdownStatement) {
		t.Run(fmt.Sprintf("statement %s is in the construct with the same actions", s.sid), func(t *testing.T) {
			if !strings.Contains(text, `Sid: jsii.String("`+s.sid+`")`) {
				t.Errorf("no statement %s in constructs/locker/locker.go", s.sid)
			}
			want := `Actions: jsii.Strings("` + strings.Join(s.actions, `", "`) + `")`
			if !strings.Contains(text, want) {
				t.Errorf("constructs/locker/locker.go lacks %s", want)
			}
			if s.condition != nil {
				cond := `Sid: jsii.String("` + s.sid + `"), ` + want + `, Resources: &[]*string{managed}, Conditions: &map[string]interface{}{ "ArnEquals": map[string]interface{}{"iam:PolicyARN": DenyAllPolicyARN(stack)}, },`
				if !strings.Contains(text, cond) {
					t.Errorf("constructs/locker/locker.go lacks %s", cond)
				}
			}
		})
	}
}

func TestTheLockerRoleCanWriteLocksOnManagedRolesOnly(t *testing.T) {
	policy := lockerPolicy(t, lockdownStatement)
	const (
		allowed  = iameval.Allowed
		implicit = iameval.ImplicitlyDenied
		web      = "arn:aws:iam::111122223333:role/defenders/web-role"
	)
	tests := []struct {
		name     string
		action   string
		resource string
		want     string
	}{
		{"it may put the lock on a role under /defenders/", "iam:PutRolePolicy", web, allowed},
		{"it may put the lock on a role deeper under /defenders/", "iam:PutRolePolicy", "arn:aws:iam::111122223333:role/defenders/team/app", allowed},
		{"it may not put a policy on Admin at /", "iam:PutRolePolicy", "arn:aws:iam::111122223333:role/Admin", implicit},
		{"it may not put a policy on a role under /defendersx/", "iam:PutRolePolicy", "arn:aws:iam::111122223333:role/defendersx/evil", implicit},
		{"it may not put a policy on a role in another account", "iam:PutRolePolicy", "arn:aws:iam::444455556666:role/defenders/web-role", implicit},
		{"it may not read the policies of Admin", "iam:GetRolePolicy", "arn:aws:iam::111122223333:role/Admin", implicit},
		{"it may not attach a managed policy to a managed role", "iam:AttachRolePolicy", web, implicit},
		{"it may not create a role under /defenders/", "iam:CreateRole", "arn:aws:iam::111122223333:role/defenders/new-role", implicit},
		{"it may not pass a managed role", "iam:PassRole", web, implicit},
		{"it may not delete a lock", "iam:DeleteRolePolicy", web, implicit},
		{"it may not change who can assume a managed role", "iam:UpdateAssumeRolePolicy", web, implicit},
		{"it may not tag a role", "iam:TagRole", "arn:aws:iam::111122223333:role/Admin", implicit},
		{"it may not assume a managed role", "sts:AssumeRole", web, implicit},
		{"with lockdown it may assume its own role", "sts:AssumeRole", "arn:aws:iam::111122223333:role/defenders-lockdown/c8locker/LockerRole", allowed},
		{"with lockdown it may not assume a role at /", "sts:AssumeRole", "arn:aws:iam::111122223333:role/Admin", implicit},
		{"it may not create access keys", "iam:CreateAccessKey", "arn:aws:iam::111122223333:user/admin", implicit},
		{"it may read which stack owns a role", "cloudformation:DescribeStackResources", lambdatest.StackID("Luke"), allowed},
		{"it may read a stack's status", "cloudformation:DescribeStacks", lambdatest.StackID("Luke"), allowed},
		{"it may not delete a stack", "cloudformation:DeleteStack", lambdatest.StackID("Luke"), implicit},
		{"it may not update a stack", "cloudformation:UpdateStack", lambdatest.StackID("Luke"), implicit},
		{"it may not read another region's stacks", "cloudformation:DescribeStacks",
			"arn:aws:cloudformation:eu-west-1:111122223333:stack/Luke/00000000-0000-4000-8000-000000000000", implicit},
	}
	reqs := make([]iameval.Request, 0, len(tests))
	for _, tc := range tests {
		reqs = append(reqs, iameval.Request{Name: tc.name, Principal: lockerPrincipal, Action: tc.action, Resource: tc.resource,
			IdentityPolicies: []iameval.Policy{{Name: "locker", Document: policy}}})
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if res[i].Decision != tc.want {
				t.Errorf("%s on %s: %s, want %s", tc.action, tc.resource, res[i].Decision, tc.want)
			}
		})
	}
}

// TestEveryCallTheBootstrapMakesIsAllowed runs the shipped bootstrap
// through a state change and a schedule and evaluates every call the fakes
// received against the construct's statements: a permission the locker
// needs but the construct forgot fails here, not in production.
func TestEveryCallTheBootstrapMakesIsAllowed(t *testing.T) {
	c := newCloud(t)
	withModes(t, c)
	c.PutInstance(lambdatest.Instance{ID: web2, State: "stopped", VPC: vpcID, PrivateIP: "10.0.1.11", Profile: webProfile})
	c.SetRolePolicy(webRole, "app", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	// A role without room for any inline lock: AWSDenyAll is attached, then
	// detached once its other policy shrinks.
	c.AddRole("full-role", "/defenders/")
	c.AddInstanceProfile("full-profile", "/", "full-role")
	c.PutInstance(lambdatest.Instance{ID: "i-0ddddddddddddddd1", State: "running", VPC: vpcID, PrivateIP: "10.0.3.10", PublicIP: "54.10.20.70", Profile: "full-profile"})
	room := lockpolicy.MaxRolePolicySize - lockpolicy.DenyAll().Size() + 1
	head, tail := `{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/`, `"}]}`
	c.SetRolePolicy("full-role", "app", head+strings.Repeat("k", room-len(head)-len(tail))+tail)
	f := startLocker(t, c, nil)
	mustSucceed(t, f, stateChange(t, web1, "running"))
	mustSucceed(t, f, scheduled(t))
	mustSucceed(t, f, stateChange(t, adminInst, "running"))
	mustSucceed(t, f, addressEvent(t))
	mustSucceed(t, f, event(t, "AWS API Call via CloudTrail", "aws.ec2", map[string]any{"eventSource": "ec2.amazonaws.com",
		"eventName": "AssociateAddress", "requestParameters": map[string]any{"allocationId": "eipalloc-0a1b2c3d4e5f60718"}}))
	c.SetRolePolicy("full-role", "app", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	mustSucceed(t, f, stateChange(t, "i-0ddddddddddddddd1", "running"))
	if len(c.AttachedPolicies("full-role")) != 0 || c.IAM.Count("AttachRolePolicy") == 0 || c.IAM.Count("DetachRolePolicy") == 0 {
		t.Fatalf("AWSDenyAll was not attached and detached: attached %q, %d attach and %d detach calls",
			c.AttachedPolicies("full-role"), c.IAM.Count("AttachRolePolicy"), c.IAM.Count("DetachRolePolicy"))
	}

	paths := map[string]string{webRole: "/defenders/", adminRole: "/", evilRole: "/defendersx/", natRole: "/defenders/", apiRole: "/defenders/", "full-role": "/defenders/"}
	profilePaths := map[string]string{webProfile: "/", "admin-profile": "/", "evil-profile": "/defendersx/", natProfile: "/", apiProfile: "/", "full-profile": "/"}
	seen := map[string]bool{}
	var reqs []iameval.Request
	policy := lockerPolicy(t)
	add := func(action, resource string, ctx map[string]any) {
		name := action + " on " + resource
		if v, ok := ctx["iam:PolicyARN"]; ok {
			name += " of " + v.(string)
		}
		if seen[name] {
			return
		}
		seen[name] = true
		reqs = append(reqs, iameval.Request{Name: name, Principal: lockerPrincipal, Action: action, Resource: resource, Context: ctx,
			IdentityPolicies: []iameval.Policy{{Name: "locker", Document: policy}}})
	}
	for _, call := range c.EC2.Calls("") {
		add("ec2:"+call.Action, "*", nil)
	}
	for _, call := range c.IAM.Calls("") {
		var ctx map[string]any
		if call.Form.Has("PolicyArn") {
			ctx = map[string]any{"iam:PolicyARN": call.Form.Get("PolicyArn")}
		}
		switch {
		case call.Form.Has("RoleName"):
			role := call.Form.Get("RoleName")
			add("iam:"+call.Action, lambdatest.RoleARN(paths[role], role), ctx)
		case call.Form.Has("InstanceProfileName"):
			p := call.Form.Get("InstanceProfileName")
			add("iam:"+call.Action, lambdatest.InstanceProfileARN(profilePaths[p], p), ctx)
		default:
			add("iam:"+call.Action, "*", ctx)
		}
	}
	// The stack look-ups name a role (whose stack the fake knows: web-role's
	// is Luke) or a stack id.
	stackOf := map[string]string{webRole: lambdatest.StackID(webStack)}
	for _, call := range c.CloudFormation.Calls("") {
		switch {
		case call.Form.Has("PhysicalResourceId"):
			arn, ok := stackOf[call.Form.Get("PhysicalResourceId")]
			if !ok {
				arn = "arn:aws:cloudformation:us-east-1:111122223333:stack/unknown/00000000-0000-4000-8000-000000000000"
			}
			add("cloudformation:"+call.Action, arn, nil)
		default:
			add("cloudformation:"+call.Action, call.Form.Get("StackName"), nil)
		}
	}
	if c.CloudFormation.Count("") == 0 {
		t.Error("the bootstrap made no CloudFormation call: the stack look-up is not exercised")
	}
	for _, action := range []string{"ec2:DescribeRouteTables", "ec2:DescribeNatGateways", "ec2:DescribeAddresses", "iam:ListRoleTags",
		"iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy"} {
		if !slices.ContainsFunc(reqs, func(r iameval.Request) bool { return r.Action == action }) {
			t.Errorf("the bootstrap never called %s: its permission is not exercised", action)
		}
	}
	if len(reqs) < 8 {
		t.Fatalf("only %d distinct calls: %v", len(reqs), seen)
	}
	res, err := iameval.Evaluate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Run("the construct allows "+r.Name, func(t *testing.T) {
			if r.Decision != iameval.Allowed {
				t.Errorf("%s: %s", r.Name, r.Decision)
			}
		})
	}
}
