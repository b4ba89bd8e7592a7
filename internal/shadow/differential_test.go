package shadow

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// diffRequest is a request of the differential test: a CloudTrail record
// (with what the inventory and the caller know), or an IAM request context
// that no record produces.
type diffRequest struct {
	name      string
	call      *call
	tags      map[string]string // principal tags, known
	context   map[string]any    // instead of call
	principal string            // with context; default the instance session
}

// TestDifferential evaluates every lock mode and topology, DenyAll, an SCP
// and a document of the remaining operators against records of the
// instance, of thieves, of services and of other principals, with this
// package and with the independent IAM engine (internal/iameval), in one
// batch: wherever this package decides, the decisions and the denying
// statements must be the same.
func TestDifferential(t *testing.T) {
	docs := []struct {
		name string
		doc  lockpolicy.Document
	}{
		{"instance-public-ip", render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}})},
		{"elastic-ip", render(t, lockpolicy.Lock{SourceIPs: []string{publicIP, elasticIP}, VPCs: []string{instanceVPC}})},
		{"nat-egress", render(t, lockpolicy.Lock{SourceIPs: []string{natIP, instanceIPv6}, VPCs: []string{instanceVPC}})},
		{"vpc-endpoints-only", render(t, lockpolicy.Lock{VPCs: []string{instanceVPC}})},
		{"public addresses only", render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}})},
		{"two VPCs", render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC, otherVPC}})},
		{"central egress and shared endpoints", render(t, lockpolicy.Lock{VPCs: []string{instanceVPC},
			Trust: lockpolicy.Trust{EgressPrefixes: []string{centralEgress}, SharedVPCEndpoints: []string{sharedEndpoint}}})},
		{"shared endpoints only", render(t, lockpolicy.Lock{Trust: lockpolicy.Trust{SharedVPCEndpoints: []string{sharedEndpoint}}})},
		{"deny-all", lockpolicy.DenyAll()},
		{"scp", scpDocument()},
		{"operators", operatorsDocument()},
	}
	creds := map[string]any{
		"aws:Ec2InstanceSourceVpc":         instanceVPC,
		"aws:Ec2InstanceSourcePrivateIPv4": privateIP,
		"ec2:SourceInstanceARN":            "arn:aws:ec2:" + region + ":" + account + ":instance/" + instanceID,
		"aws:PrincipalAccount":             account,
		"aws:PrincipalArn":                 "arn:aws:iam::" + account + ":role/" + role,
		"aws:ViaAWSService":                "false",
	}
	with := func(extra map[string]any) map[string]any {
		m := maps.Clone(creds)
		maps.Copy(m, extra)
		return m
	}
	reqs := []diffRequest{
		{name: "the instance from its public IP", call: &call{src: publicIP}},
		{name: "the instance from its Elastic IP", call: &call{src: elasticIP}},
		{name: "the instance through its NAT gateway", call: &call{src: natIP}},
		{name: "the instance from its IPv6 address", call: &call{src: instanceIPv6}},
		{name: "the instance through the central egress", call: &call{src: centralNATIP}},
		{name: "a thief from the internet", call: &call{src: attackerIP}},
		{name: "a thief from an IPv6 address", call: &call{src: attackerIPv6}},
		{name: "the instance through an endpoint of its VPC", call: &call{src: privateIP, vpce: endpointID}},
		{name: "a neighbour through an endpoint of the instance's VPC", call: &call{src: neighbourIP, vpce: endpointID}},
		{name: "a thief through an endpoint of another VPC", call: &call{src: "10.9.9.9", vpce: otherVPCE}},
		{name: "a thief with the same private IP through an endpoint of another VPC", call: &call{src: privateIP, vpce: otherVPCE}},
		{name: "the instance through the shared endpoint", call: &call{src: privateIP, vpce: sharedEndpoint}},
		{name: "a neighbour through the shared endpoint", call: &call{src: neighbourIP, vpce: sharedEndpoint}},
		{name: "another instance of the role from the internet", call: &call{session: secondID, src: attackerIP}},
		{name: "an AWS service on the instance's behalf", call: &call{src: "cloudformation.amazonaws.com", invokedBy: "cloudformation.amazonaws.com"}},
		{name: "an instance of the exempt account from the internet", call: &call{account: exemptAcct, src: attackerIP}},
		{name: "an exempt-tagged instance role from the internet", call: &call{src: attackerIP}, tags: map[string]string{exemptTag: "true"}},
		{name: "an untagged-true instance role from the internet", call: &call{src: attackerIP}, tags: map[string]string{exemptTag: "false"}},
		{name: "a Lambda function's role session from the internet", call: &call{session: "my-function", src: attackerIP}},
		{name: "an IAM user from the internet", call: &call{iamUser: "ci-deployer", src: attackerIP}},
		{name: "a request with no network origin", context: creds},
		{name: "an endpoint call with credentials lacking the instance keys", context: map[string]any{
			"aws:ViaAWSService": "false", "aws:PrincipalAccount": account, "aws:PrincipalArn": "arn:aws:iam::" + account + ":role/" + role,
			"aws:SourceVpc": instanceVPC, "aws:SourceVpce": endpointID, "aws:VpcSourceIp": privateIP}},
		{name: "an endpoint call without aws:VpcSourceIp", context: with(map[string]any{"aws:SourceVpc": instanceVPC, "aws:SourceVpce": endpointID})},
		{name: "an endpoint call without aws:SourceVpce", context: with(map[string]any{"aws:SourceVpc": sharedVPC, "aws:VpcSourceIp": privateIP})},
		{name: "a service call without a network origin", context: with(map[string]any{"aws:ViaAWSService": "true"})},
	}

	type row struct {
		name string
		doc  int
		req  Request
		ours Verdict
	}
	var rows []row
	var batch []iameval.Request
	undetermined := 0
	for di, d := range docs {
		p := compile(t, d.doc)
		docJSON, err := d.doc.JSON()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range reqs {
			name := d.name + ": " + q.name
			var req Request
			principal := or(q.principal, call{}.principal())
			if q.call != nil {
				rec := q.call.record(t)
				o := Options{EndpointVPCs: endpoints, PrincipalTags: q.tags, PrincipalTagsKnown: true}
				req, err = FromRecord(&rec, theInstance, o)
				principal = q.call.principal()
			} else {
				req, err = NewRequest(q.context)
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v := p.Evaluate(&req)
			if v.Decision == Undetermined {
				// Sound but not comparable: the IAM engine needs every value.
				undetermined++
				t.Logf("%s: undetermined: %v", name, v.Unknown)
				continue
			}
			rows = append(rows, row{name: name, doc: di, req: req, ours: v})
			batch = append(batch, iameval.Request{
				Name: name, Principal: principal, Action: "ec2:DescribeInstances", Resource: "*",
				Context: req.Context(),
				IdentityPolicies: []iameval.Policy{
					{Name: "AmazonEC2ReadOnlyAccess", Document: json.RawMessage(allowPolicy)},
					{Name: "Proposed", Document: docJSON},
				},
			})
		}
	}
	if len(rows) < 25 {
		t.Fatalf("only %d comparable rows", len(rows))
	}
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(c, batch)
	if err != nil {
		t.Fatalf("iameval: %v", err)
	}
	denied := 0
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			got := results[i]
			want := iameval.Allowed
			if r.ours.Decision == Denied {
				want = iameval.ExplicitlyDenied
				denied++
			}
			if got.Decision != want {
				t.Errorf("shadow says %v (%q), the IAM engine %s %q\ncontext: %v\nexplain: %s",
					r.ours.Decision, r.ours.Sids, got.Decision, got.DenyingStatements, r.req.Context(), got.Explain)
			}
			if ours := slices.Sorted(slices.Values(r.ours.Sids)); !slices.Equal(ours, got.DenyingStatements) {
				t.Errorf("shadow denies by %q, the IAM engine by %q", ours, got.DenyingStatements)
			}
		})
	}
	t.Logf("%d rows compared (%d denied, %d allowed), %d undetermined rows left out", len(rows), denied, len(rows)-denied, undetermined)
	if denied == 0 || denied == len(rows) {
		t.Errorf("the rows must both deny and allow: %d of %d denied", denied, len(rows))
	}
	// Every row's facts are known but a service's own address, which only
	// the operators document reads, and its Bool statement denies the
	// service call anyway.
	if undetermined != 0 {
		t.Errorf("%d undetermined rows, want none", undetermined)
	}
}

// TestUndeterminedIsSound checks, for requests with unknown values, that
// every completion of the unknowns the IAM engine is given agrees with a
// determined verdict, and that an undetermined one really has completions
// that deny and completions that allow.
func TestUndeterminedIsSound(t *testing.T) {
	lock := render(t, lockpolicy.Lock{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}})
	scp := scpDocument()
	tests := []struct {
		name        string
		doc         lockpolicy.Document
		c           call
		inst        Instance
		tagsKnown   bool
		want        Decision
		completions []map[string]any // values for the unknown keys
	}{
		{"an unmapped endpoint from the instance's own host", lock, call{src: privateIP, vpce: unmappedVPCE}, theInstance, true, Undetermined,
			[]map[string]any{{"aws:SourceVpc": instanceVPC}, {"aws:SourceVpc": otherVPC}}},
		{"an unmapped endpoint from another host is denied whatever its VPC", lock, call{src: neighbourIP, vpce: unmappedVPCE}, theInstance, true, Denied,
			[]map[string]any{{"aws:SourceVpc": instanceVPC}, {"aws:SourceVpc": otherVPC}}},
		{"the internet path does not need the instance's VPC", lock, call{src: attackerIP}, Instance{Region: region}, true, Denied,
			[]map[string]any{{"aws:Ec2InstanceSourceVpc": instanceVPC, "aws:Ec2InstanceSourcePrivateIPv4": privateIP}, {"aws:Ec2InstanceSourceVpc": otherVPC}}},
		{"an SCP with a tag exemption and unknown tags", scp, call{src: attackerIP}, theInstance, false, Undetermined,
			[]map[string]any{{"aws:PrincipalTag/" + exemptTag: "true"}, {"aws:PrincipalTag/" + exemptTag: "false"}, {}}},
		{"an SCP spares other principals whatever their tags", scp, call{iamUser: "ci", src: attackerIP}, theInstance, false, Allowed,
			[]map[string]any{{"aws:PrincipalTag/" + exemptTag: "true"}, {}}},
	}
	var batch []iameval.Request
	var meta []int
	for i, tt := range tests {
		rec := tt.c.record(t)
		req, err := FromRecord(&rec, tt.inst, Options{EndpointVPCs: endpoints, PrincipalTagsKnown: tt.tagsKnown})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := compile(t, tt.doc).Evaluate(&req); got.Decision != tt.want {
			t.Fatalf("%s: decision %v (%v), want %v", tt.name, got.Decision, got.Unknown, tt.want)
		}
		doc, err := tt.doc.JSON()
		if err != nil {
			t.Fatal(err)
		}
		for j, extra := range tt.completions {
			ctx := req.Context()
			maps.Copy(ctx, extra)
			batch = append(batch, iameval.Request{
				Name: fmt.Sprintf("%s #%d", tt.name, j), Principal: tt.c.principal(), Action: "ec2:DescribeInstances", Resource: "*",
				Context: ctx,
				IdentityPolicies: []iameval.Policy{
					{Name: "AmazonEC2ReadOnlyAccess", Document: json.RawMessage(allowPolicy)},
					{Name: "Proposed", Document: doc},
				},
			})
			meta = append(meta, i)
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(c, batch)
	if err != nil {
		t.Fatalf("iameval: %v", err)
	}
	seen := make([]map[string]bool, len(tests))
	for k, r := range results {
		i := meta[k]
		if seen[i] == nil {
			seen[i] = map[string]bool{}
		}
		seen[i][r.Decision] = true
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(seen[i]))
			var want []string
			switch tt.want {
			case Denied:
				want = []string{iameval.ExplicitlyDenied}
			case Allowed:
				want = []string{iameval.Allowed}
			default:
				want = []string{iameval.Allowed, iameval.ExplicitlyDenied}
			}
			if !slices.Equal(got, want) {
				t.Errorf("the IAM engine decides %q over the completions, want %q", got, want)
			}
		})
	}
}
