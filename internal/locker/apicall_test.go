package locker

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// cloudTrail returns an "AWS API Call via CloudTrail" event of an EC2 call
// with requestParameters and responseElements (any JSON values).
func cloudTrail(t *testing.T, name string, request, response any, errorCode string) []byte {
	t.Helper()
	detail := map[string]any{"eventVersion": "1.10", "eventSource": "ec2.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
		"sourceIPAddress": "198.51.100.200", "requestParameters": request, "responseElements": response,
		"eventType": "AwsApiCall", "managementEvent": true, "readOnly": false, "eventCategory": "Management"}
	if errorCode != "" {
		detail["errorCode"] = errorCode
	}
	b, err := json.Marshal(map[string]any{"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "AWS API Call via CloudTrail",
		"source": "aws.ec2", "account": account, "time": "2026-01-02T03:04:05Z", "region": "us-east-1", "resources": []string{}, "detail": detail})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEventCollectsWhatACloudTrailEventNames(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		request   any
		response  any
		errorCode string
		want      APIRefs
	}{
		{name: "AssociateAddress names the instance and the allocation",
			event:    "AssociateAddress",
			request:  map[string]any{"instanceId": "i-0aaaaaaaaaaaaaaa1", "allocationId": "eipalloc-0aaaaaaaaaaaaaaa1", "allowReassociation": false},
			response: map[string]any{"requestId": "r", "_return": true, "associationId": "eipassoc-0aaaaaaaaaaaaaaa1"},
			want: APIRefs{InstanceIDs: []string{"i-0aaaaaaaaaaaaaaa1"}, AllocationIDs: []string{"eipalloc-0aaaaaaaaaaaaaaa1"},
				AssociationIDs: []string{"eipassoc-0aaaaaaaaaaaaaaa1"}}},
		{name: "DisassociateAddress names only the association",
			event: "DisassociateAddress", request: map[string]any{"associationId": "eipassoc-0aaaaaaaaaaaaaaa1"},
			response: map[string]any{"requestId": "r", "_return": true},
			want:     APIRefs{AssociationIDs: []string{"eipassoc-0aaaaaaaaaaaaaaa1"}}},
		{name: "AssignIpv6Addresses names the network interface",
			event:    "AssignIpv6Addresses",
			request:  map[string]any{"networkInterfaceId": "eni-0aaaaaaaaaaaaaaa1", "ipv6AddressCount": 1},
			response: map[string]any{"AssignIpv6AddressesResponse": map[string]any{"networkInterfaceId": "eni-0aaaaaaaaaaaaaaa1", "assignedIpv6Addresses": map[string]any{"item": "2001:db8::5"}}},
			want:     APIRefs{NetworkInterfaceIDs: []string{"eni-0aaaaaaaaaaaaaaa1"}}},
		{name: "AssociateIamInstanceProfile names the instance inside its request wrapper",
			event: "AssociateIamInstanceProfile",
			request: map[string]any{"AssociateIamInstanceProfileRequest": map[string]any{"InstanceId": "i-0aaaaaaaaaaaaaaa1",
				"IamInstanceProfile": map[string]any{"Name": "web"}}},
			response: map[string]any{"AssociateIamInstanceProfileResponse": map[string]any{"iamInstanceProfileAssociation": map[string]any{
				"associationId": "iip-assoc-0aaaaaaaaaaaaaaa1", "instanceId": "i-0aaaaaaaaaaaaaaa1", "state": "associating",
				"iamInstanceProfile": map[string]any{"arn": "arn:aws:iam::111122223333:instance-profile/defenders/web", "id": "AIPAEXAMPLE"}}}},
			want: APIRefs{InstanceIDs: []string{"i-0aaaaaaaaaaaaaaa1"}, InstanceProfileARNs: []string{"arn:aws:iam::111122223333:instance-profile/defenders/web"}}},
		{name: "DetachNetworkInterface names the attachment",
			event: "DetachNetworkInterface", request: map[string]any{"attachmentId": "eni-attach-0aaaaaaaaaaaaaaa1", "force": false},
			want: APIRefs{AttachmentIDs: []string{"eni-attach-0aaaaaaaaaaaaaaa1"}}},
		{name: "a failed call keeps its error code",
			event: "AssociateAddress", request: map[string]any{"instanceId": "i-0aaaaaaaaaaaaaaa1"}, errorCode: "Client.UnauthorizedOperation",
			want: APIRefs{InstanceIDs: []string{"i-0aaaaaaaaaaaaaaa1"}}},
		{name: "values that do not look like what their key names are dropped",
			event:   "AssociateAddress",
			request: map[string]any{"instanceId": "web-server", "publicIp": "not-an-ip", "associationId": "iip-assoc-0aaaaaaaaaaaaaaa1"},
			want:    APIRefs{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(cloudTrail(t, tt.event, tt.request, tt.response, tt.errorCode))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != KindAPICall || ev.APICall != tt.event || ev.ErrorCode != tt.errorCode {
				t.Errorf("event %+v", ev)
			}
			got, _ := json.Marshal(ev.Refs)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("refs %s, want %s", got, want)
			}
		})
	}
}

// addressWorld is two managed roles with a running instance each, their
// locks in place, and an Elastic IP.
func addressWorld(t *testing.T) *fakeCloud {
	c := newFakeCloud()
	web := c.addRole("web", "/defenders/")
	db := c.addRole("db", "/defenders/")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", web, vpcA, publicIP("203.0.113.10")))
	c.addInstance(instance("i-0bbbbbbbbbbbbbbb1", "running", db, vpcA, publicIP("203.0.113.20")))
	c.roles["web"].policies[PolicyName] = render(t, []string{"203.0.113.10"}, []string{vpcA})
	c.roles["db"].policies[PolicyName] = render(t, []string{"203.0.113.20"}, []string{vpcA})
	return c
}

// withEIP gives the web instance the Elastic IP 198.51.100.5 on its
// primary interface (eni-0aaaaaaaaaaaaaaa1), as AssociateAddress does.
func withEIP(c *fakeCloud) {
	p := profileARN("/defenders/", "web")
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", p, vpcA, publicIP("198.51.100.5")))
	c.ec2.PutAddress(ec2types.Address{AllocationId: aws.String("eipalloc-0aaaaaaaaaaaaaaa1"), AssociationId: aws.String("eipassoc-0aaaaaaaaaaaaaaa1"),
		PublicIp: aws.String("198.51.100.5"), InstanceId: aws.String("i-0aaaaaaaaaaaaaaa1"), NetworkInterfaceId: aws.String("eni-0aaaaaaaaaaaaaaa1"),
		Domain: ec2types.DomainTypeVpc})
}

func TestAddressChangesReconcileOnlyTheAffectedRole(t *testing.T) {
	tests := []struct {
		name      string
		change    func(c *fakeCloud)
		event     func(t *testing.T) []byte
		wantRoles []string // reconciled, in order
		wantWeb   []string // web's lock afterwards
		wantAll   bool     // every managed role (the event names no instance the locker can find)
		wantCalls map[string]int
	}{
		{name: "an Elastic IP associated with a named instance reconciles that instance's role only",
			change: withEIP,
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"instanceId": "i-0aaaaaaaaaaaaaaa1", "allocationId": "eipalloc-0aaaaaaaaaaaaaaa1"},
					map[string]any{"associationId": "eipassoc-0aaaaaaaaaaaaaaa1"}, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"198.51.100.5"},
			wantCalls: map[string]int{"ec2:DescribeAddresses": 0, "iam:ListRoles": 0}},
		{name: "an Elastic IP associated with a network interface is traced to its instance through DescribeInstances",
			change: withEIP,
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"networkInterfaceId": "eni-0aaaaaaaaaaaaaaa1", "allocationId": "eipalloc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"198.51.100.5"},
			wantCalls: map[string]int{"ec2:DescribeAddresses": 0, "iam:ListRoles": 0}},
		{name: "an event that names only the allocation is traced to its instance through DescribeAddresses",
			change: withEIP,
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"allocationId": "eipalloc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"198.51.100.5"},
			wantCalls: map[string]int{"ec2:DescribeAddresses": 1, "iam:ListRoles": 0}},
		{name: "an event that names only the association is traced to its instance through DescribeAddresses",
			change: withEIP,
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"associationId": "eipassoc-0aaaaaaaaaaaaaaa1"}, nil, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"198.51.100.5"},
			wantCalls: map[string]int{"ec2:DescribeAddresses": 1, "iam:ListRoles": 0}},
		{name: "an IPv6 address assigned to a network interface reaches the lock of that instance's role only",
			change: func(c *fakeCloud) {
				c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", profileARN("/defenders/", "web"), vpcA, publicIP("203.0.113.10"), eni("", "", "2001:db8::5")))
			},
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssignIpv6Addresses", map[string]any{"networkInterfaceId": "eni-1aaaaaaaaaaaaaaa1", "ipv6AddressCount": 1}, nil, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"203.0.113.10", "2001:db8::5/128"},
			wantCalls: map[string]int{"iam:ListRoles": 0}},
		{name: "an instance profile associated with an instance reconciles the new role only",
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateIamInstanceProfile",
					map[string]any{"AssociateIamInstanceProfileRequest": map[string]any{"InstanceId": "i-0aaaaaaaaaaaaaaa1", "IamInstanceProfile": map[string]any{"Name": "web"}}}, nil, "")
			},
			wantRoles: []string{"web"}, wantWeb: []string{"203.0.113.10"},
			wantCalls: map[string]int{"iam:ListRoles": 0}},
		{name: "a disassociated Elastic IP, whose association no longer exists, reconciles every managed role and says so",
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "DisassociateAddress", map[string]any{"associationId": "eipassoc-0ccccccccccccccc1"}, nil, "")
			},
			wantRoles: []string{"db", "web"}, wantWeb: []string{"203.0.113.10"}, wantAll: true,
			wantCalls: map[string]int{"ec2:DescribeAddresses": 1, "iam:ListRoles": 1}},
		{name: "a call that failed changes nothing and costs nothing",
			event: func(t *testing.T) []byte {
				return cloudTrail(t, "AssociateAddress", map[string]any{"instanceId": "i-0aaaaaaaaaaaaaaa1"}, nil, "Client.UnauthorizedOperation")
			},
			wantWeb: []string{"203.0.113.10"}, wantCalls: map[string]int{"ec2:DescribeInstances": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := addressWorld(t)
			if tt.change != nil {
				tt.change(c)
			}
			l, _ := newTestLocker(t, c)
			rep, err := l.Handle(context.Background(), tt.event(t))
			if err != nil {
				t.Fatal(err)
			}
			var roles []string
			for _, res := range rep.Results {
				roles = append(roles, res.Role)
				if res.Action == ActionError {
					t.Errorf("%s: %v", res.Role, res.Err)
				}
			}
			slices.Sort(roles)
			if !slices.Equal(roles, tt.wantRoles) {
				t.Errorf("reconciled %q, want %q", roles, tt.wantRoles)
			}
			if got, want := c.lock("web"), render(t, tt.wantWeb, []string{vpcA}); got != want {
				t.Errorf("web's lock = %s\nwant %s", got, want)
			}
			if got, want := c.lock("db"), render(t, []string{"203.0.113.20"}, []string{vpcA}); got != want {
				t.Errorf("db's lock changed: %s", got)
			}
			noted := slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "reconciling every managed role") })
			if noted != tt.wantAll {
				t.Errorf("notes %q: a note that every role is reconciled: %v, want %v", rep.Notes, noted, tt.wantAll)
			}
			for op, n := range tt.wantCalls {
				if rep.Calls[op] != n {
					t.Errorf("%s called %d times, want %d (calls %v)", op, rep.Calls[op], n, rep.Calls)
				}
			}
		})
	}
}

// TestAReplacedInstanceProfileLeavesTheOldRolesLock: the instance moves
// from role old to role new. The event names the new profile only; the
// old role's lock, which lists the instance's address, is found by that
// address and rewritten without it.
func TestAReplacedInstanceProfileLeavesTheOldRolesLock(t *testing.T) {
	c := newFakeCloud()
	oldP := c.addRole("old", "/defenders/")
	newP := c.addRole("new", "/defenders/")
	c.addRole("other", "/defenders/")
	c.roles["other"].policies[PolicyName] = render(t, []string{"203.0.113.99"}, []string{vpcA})
	c.addInstance(instance("i-0bbbbbbbbbbbbbbb1", "running", oldP, vpcA, publicIP("203.0.113.11")))
	c.roles["old"].policies[PolicyName] = render(t, []string{"203.0.113.10", "203.0.113.11"}, []string{vpcA})
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", newP, vpcA, publicIP("203.0.113.10")))
	l, _ := newTestLocker(t, c)
	ev := cloudTrail(t, "ReplaceIamInstanceProfileAssociation",
		map[string]any{"ReplaceIamInstanceProfileAssociationRequest": map[string]any{"AssociationId": "iip-assoc-0aaaaaaaaaaaaaaa1",
			"IamInstanceProfile": map[string]any{"Arn": newP}}},
		map[string]any{"ReplaceIamInstanceProfileAssociationResponse": map[string]any{"iamInstanceProfileAssociation": map[string]any{
			"associationId": "iip-assoc-0aaaaaaaaaaaaaaa2", "instanceId": "i-0aaaaaaaaaaaaaaa1", "iamInstanceProfile": map[string]any{"arn": newP}}}}, "")
	rep, err := l.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, res := range rep.Results {
		roles = append(roles, res.Role)
	}
	slices.Sort(roles)
	if !slices.Equal(roles, []string{"new", "old"}) {
		t.Errorf("reconciled %q, want new and old (not other)", roles)
	}
	if got, want := c.lock("new"), render(t, []string{"203.0.113.10"}, []string{vpcA}); got != want {
		t.Errorf("new's lock = %s", got)
	}
	if got, want := c.lock("old"), render(t, []string{"203.0.113.11"}, []string{vpcA}); got != want {
		t.Errorf("old's lock = %s, want the moved instance's address gone", got)
	}
}

// TestADisassociatedInstanceProfilesRoleIsReconciled: the response of
// DisassociateIamInstanceProfile names the profile removed; its role loses
// the instance's address without a look at any other role.
func TestADisassociatedInstanceProfilesRoleIsReconciled(t *testing.T) {
	c := addressWorld(t)
	c.addInstance(instance("i-0aaaaaaaaaaaaaaa1", "running", "", vpcA, publicIP("203.0.113.10")))
	l, _ := newTestLocker(t, c)
	ev := cloudTrail(t, "DisassociateIamInstanceProfile",
		map[string]any{"DisassociateIamInstanceProfileRequest": map[string]any{"AssociationId": "iip-assoc-0aaaaaaaaaaaaaaa1"}},
		map[string]any{"DisassociateIamInstanceProfileResponse": map[string]any{"iamInstanceProfileAssociation": map[string]any{
			"associationId": "iip-assoc-0aaaaaaaaaaaaaaa1", "instanceId": "i-0aaaaaaaaaaaaaaa1", "state": "disassociating",
			"iamInstanceProfile": map[string]any{"arn": profileARN("/defenders/", "web"), "id": "AIPAEXAMPLE"}}}}, "")
	rep, err := l.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if res := onlyResult(t, rep); res.Role != "web" || res.Mode != ModeDenyAll && res.Mode != ModeVPCEndpointsOnly {
		t.Errorf("result %+v", res)
	}
	if strings.Contains(c.lock("web"), "203.0.113.10") {
		t.Errorf("web's lock still lists the instance: %s", c.lock("web"))
	}
	if rep.Calls["iam:ListRoles"] != 0 {
		t.Errorf("calls %v: every role was looked at", rep.Calls)
	}
}
