package lambdatest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// NamespaceCloudFormation is CloudFormation's API version namespace.
const NamespaceCloudFormation = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

// Stack is a CloudFormation stack of a Cloud. The Cloud does not run
// templates: a test sets a stack's status and changes the account itself
// (DeleteRolePolicy, UpdateInstance, DeleteInstanceProfile, DeleteRole) in
// the order CloudFormation would.
type Stack struct {
	// Name is the stack name.
	Name string
	// Status is the stack status, e.g. "CREATE_COMPLETE" or
	// "DELETE_IN_PROGRESS".
	Status string
	// Root is the name of the root stack when this one is nested ("" for
	// a root stack).
	Root string
	// Resources are the stack's resources.
	Resources []StackResource
}

// StackResource is one resource of a Stack.
type StackResource struct {
	// LogicalID is the resource's logical id in the template.
	LogicalID string
	// PhysicalID is its physical id: a role or instance profile name, an
	// instance id, ...
	PhysicalID string
	// Type is the resource type, e.g. "AWS::IAM::Role".
	Type string
	// Status is the resource status (default "CREATE_COMPLETE").
	Status string
}

// StackID returns the stack id (an ARN) a Cloud gives the stack called name.
func StackID(name string) string {
	h := hexName(name) + hexName(name+"/id")
	return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%s-%s-%s-%s-%s", Region, Account, name, h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// PutStack creates or replaces a stack.
func (c *Cloud) PutStack(s Stack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := s
	cp.Resources = slices.Clone(s.Resources)
	c.stacks[s.Name] = &cp
}

// SetStackStatus changes a stack's status and reports whether it exists.
func (c *Cloud) SetStackStatus(name, status string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.stacks[name]
	if ok {
		s.Status = status
	}
	return ok
}

// DeleteRolePolicy deletes an inline policy directly, as CloudFormation
// deletes an AWS::IAM::Policy, and reports whether it existed.
func (c *Cloud) DeleteRolePolicy(role, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.roles[role]
	if !ok {
		return false
	}
	_, ok = r.Policies[name]
	delete(r.Policies, name)
	return ok
}

// DeleteInstanceProfile deletes an instance profile as CloudFormation does:
// it removes the profile's roles, then deletes it.
func (c *Cloud) DeleteInstanceProfile(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.profiles[name]
	delete(c.profiles, name)
	return ok
}

// DeleteRole deletes a role with IAM's checks, as CloudFormation's
// DeleteRole would: NoSuchEntity for an unknown role, DeleteConflict while
// the role has inline or attached managed policies or is in an instance
// profile.
func (c *Cloud) DeleteRole(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.role(name)
	if err != nil {
		return err
	}
	if len(r.Policies) > 0 {
		return Errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must delete policies first.")
	}
	if len(r.Attached) > 0 {
		return Errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must detach all policies first.")
	}
	for _, p := range c.profiles {
		if slices.Contains(p.Roles, name) {
			return Errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.")
		}
	}
	delete(c.roles, name)
	return nil
}

// stackByNameOrID finds a stack by name or id. As in CloudFormation, a
// deleted stack (DELETE_COMPLETE) is found by its id only.
func (c *Cloud) stackByNameOrID(key string) *Stack {
	for _, s := range c.stacks {
		if StackID(s.Name) == key || (s.Name == key && s.Status != "DELETE_COMPLETE") {
			return s
		}
	}
	return nil
}

// stackNotFound is CloudFormation's answer for an unknown stack.
func stackNotFound(key string) *APIError {
	return Errorf(http.StatusBadRequest, "ValidationError", "Stack with id %s does not exist", key)
}

// describeStackResources implements cloudformation:DescribeStackResources
// with StackName or PhysicalResourceId (not both) and LogicalResourceId.
// A physical id that no stack owns is ValidationError "Stack for ID does
// not exist"; a live stack is preferred to a deleted one.
func (c *Cloud) describeStackResources(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name, physical, logical := req.Get("StackName"), req.Get("PhysicalResourceId"), req.Get("LogicalResourceId")
	if (name == "") == (physical == "") {
		return "", Errorf(http.StatusBadRequest, "ValidationError", "Either StackName or PhysicalResourceId must be specified, but not both")
	}
	var stack *Stack
	if name != "" {
		if stack = c.stackByNameOrID(name); stack == nil {
			return "", stackNotFound(name)
		}
	} else {
		names := make([]string, 0, len(c.stacks))
		for n := range c.stacks {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			s := c.stacks[n]
			owns := slices.ContainsFunc(s.Resources, func(r StackResource) bool { return r.PhysicalID == physical })
			if owns && (stack == nil || stack.Status == "DELETE_COMPLETE") {
				stack = s
			}
		}
		if stack == nil {
			return "", Errorf(http.StatusBadRequest, "ValidationError", "Stack for %s does not exist", physical)
		}
	}
	var b strings.Builder
	b.WriteString("<StackResources>")
	for _, r := range stack.Resources {
		if logical != "" && r.LogicalID != logical {
			continue
		}
		status := r.Status
		if status == "" {
			status = "CREATE_COMPLETE"
		}
		fmt.Fprintf(&b, "<member><StackName>%s</StackName><StackId>%s</StackId><LogicalResourceId>%s</LogicalResourceId>"+
			"<PhysicalResourceId>%s</PhysicalResourceId><ResourceType>%s</ResourceType><Timestamp>2026-01-01T00:00:00Z</Timestamp>"+
			"<ResourceStatus>%s</ResourceStatus></member>",
			XMLText(stack.Name), XMLText(StackID(stack.Name)), XMLText(r.LogicalID), XMLText(r.PhysicalID), XMLText(r.Type), XMLText(status))
	}
	b.WriteString("</StackResources>")
	return b.String(), nil
}

// describeStacks implements cloudformation:DescribeStacks for one stack by
// name or id (every live stack without StackName), with ParentId and RootId
// for nested stacks.
func (c *Cloud) describeStacks(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var stacks []*Stack
	if key := req.Get("StackName"); key != "" {
		s := c.stackByNameOrID(key)
		if s == nil {
			return "", stackNotFound(key)
		}
		stacks = append(stacks, s)
	} else {
		for _, s := range c.stacks {
			if s.Status != "DELETE_COMPLETE" {
				stacks = append(stacks, s)
			}
		}
		slices.SortFunc(stacks, func(a, b *Stack) int { return strings.Compare(a.Name, b.Name) })
	}
	var b strings.Builder
	b.WriteString("<Stacks>")
	for _, s := range stacks {
		fmt.Fprintf(&b, "<member><StackId>%s</StackId><StackName>%s</StackName><CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>%s</StackStatus>",
			XMLText(StackID(s.Name)), XMLText(s.Name), XMLText(s.Status))
		if s.Root != "" {
			fmt.Fprintf(&b, "<ParentId>%s</ParentId><RootId>%s</RootId>", XMLText(StackID(s.Root)), XMLText(StackID(s.Root)))
		}
		b.WriteString("</member>")
	}
	b.WriteString("</Stacks>")
	return b.String(), nil
}
