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
)

// lockerStatements are the statements constructs/locker gives the locker's
// role, rendered for account 111122223333, partition aws and the default
// path /defenders/. TestTheRoleStatementsAreTheConstructs keeps them in
// step with constructs/locker/locker.go.
var lockerStatements = []statement{
	{"WriteOwnLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		[]string{"arn:aws:logs:us-east-1:111122223333:log-group:LockerLogs:*"}},
	{"ReadInstances", []string{"ec2:DescribeInstances"}, []string{"*"}},
	{"ListRoles", []string{"iam:ListRoles"}, []string{"*"}},
	{"ReadInstanceProfiles", []string{"iam:GetInstanceProfile", "iam:ListInstanceProfilesForRole"},
		[]string{"arn:aws:iam::111122223333:instance-profile/*", "arn:aws:iam::111122223333:role/defenders/*"}},
	// Before every write: is the role's stack (or its root) being deleted? See
	// "CloudFormation deletions" in internal/locker.
	{"ReadStacks", []string{"cloudformation:DescribeStackResources", "cloudformation:DescribeStacks"},
		[]string{"arn:aws:cloudformation:us-east-1:111122223333:stack/*"}},
	{"MaintainLocksOnManagedRolesOnly", []string{"iam:GetRolePolicy", "iam:ListRolePolicies", "iam:PutRolePolicy"},
		[]string{"arn:aws:iam::111122223333:role/defenders/*"}},
}

// lockdownStatement is what constructs/internal/golambda.NewRole adds with
// Props.Lockdown: the function may assume roles under its own unique path
// (its own role), to lock its credentials.
var lockdownStatement = statement{"LockdownSelfAssume", []string{"sts:AssumeRole"},
	[]string{"arn:aws:iam::111122223333:role/defenders-lockdown/c8locker/*"}}

// statement is an Allow statement.
type statement struct {
	sid       string
	actions   []string
	resources []string
}

// lockerPolicy is lockerStatements, and extra, as one IAM policy document.
func lockerPolicy(t *testing.T, extra ...statement) json.RawMessage {
	t.Helper()
	var st []map[string]any
	for _, s := range append(slices.Clone(lockerStatements), extra...) {
		st = append(st, map[string]any{"Sid": s.sid, "Effect": "Allow", "Action": s.actions, "Resource": s.resources})
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
	c.PutInstance(lambdatest.Instance{ID: web2, State: "stopped", VPC: vpcID, PrivateIP: "10.0.1.11", Profile: webProfile})
	c.SetRolePolicy(webRole, "app", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)
	f := startLocker(t, c, nil)
	mustSucceed(t, f, stateChange(t, web1, "running"))
	mustSucceed(t, f, scheduled(t))
	mustSucceed(t, f, stateChange(t, adminInst, "running"))

	paths := map[string]string{webRole: "/defenders/", adminRole: "/", evilRole: "/defendersx/"}
	profilePaths := map[string]string{webProfile: "/", "admin-profile": "/", "evil-profile": "/defendersx/"}
	seen := map[string]bool{}
	var reqs []iameval.Request
	policy := lockerPolicy(t)
	add := func(action, resource string) {
		name := action + " on " + resource
		if seen[name] {
			return
		}
		seen[name] = true
		reqs = append(reqs, iameval.Request{Name: name, Principal: lockerPrincipal, Action: action, Resource: resource,
			IdentityPolicies: []iameval.Policy{{Name: "locker", Document: policy}}})
	}
	for _, call := range c.EC2.Calls("") {
		add("ec2:"+call.Action, "*")
	}
	for _, call := range c.IAM.Calls("") {
		switch {
		case call.Form.Has("RoleName"):
			role := call.Form.Get("RoleName")
			add("iam:"+call.Action, lambdatest.RoleARN(paths[role], role))
		case call.Form.Has("InstanceProfileName"):
			p := call.Form.Get("InstanceProfileName")
			add("iam:"+call.Action, lambdatest.InstanceProfileARN(profilePaths[p], p))
		default:
			add("iam:"+call.Action, "*")
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
				t.Fatalf("a stack look-up for %s, which no stack of the test owns", call.Form.Get("PhysicalResourceId"))
			}
			add("cloudformation:"+call.Action, arn)
		default:
			add("cloudformation:"+call.Action, call.Form.Get("StackName"))
		}
	}
	if c.CloudFormation.Count("") == 0 {
		t.Error("the bootstrap made no CloudFormation call: the stack look-up is not exercised")
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
