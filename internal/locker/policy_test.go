package locker

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func TestCanonicalPolicy(t *testing.T) {
	base := `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.10/32","198.51.100.5/32"]},"Null":{"aws:SourceIp":"false"}}},{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}]}`
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{name: "whitespace and key order do not matter", same: true,
			other: `{ "Statement": [ {"Effect":"Deny", "Sid":"A", "Resource":"*", "Action":"*",
			  "Condition": {"Null": {"aws:SourceIp": "false"}, "NotIpAddress": {"aws:SourceIp": ["198.51.100.5/32", "203.0.113.10/32"]}}},
			  {"Sid":"B","Effect":"Deny","Action":["*"],"Resource":["*"]} ],
			  "Version": "2012-10-17" }`},
		{name: "statement order does not matter", same: true,
			other: `{"Version":"2012-10-17","Statement":[{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["198.51.100.5/32","203.0.113.10/32","203.0.113.10/32"]},"Null":{"aws:SourceIp":false}}}]}`},
		{name: "a different address is a change", same: false,
			other: `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.11/32","198.51.100.5/32"]},"Null":{"aws:SourceIp":"false"}}},{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}]}`},
		{name: "a missing statement is a change", same: false,
			other: `{"Version":"2012-10-17","Statement":{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}}`},
		{name: "a document that is not JSON is never the same", same: false, other: `{"Version":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := samePolicy([]byte(base), []byte(tt.other)); got != tt.same {
				a, _ := CanonicalPolicy([]byte(base))
				b, _ := CanonicalPolicy([]byte(tt.other))
				t.Errorf("samePolicy = %v, want %v\n%s\n%s", got, tt.same, a, b)
			}
		})
	}
}

func TestDecodePolicyDocument(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"A b+c","Effect":"Deny","Action":"*","Resource":"*"}]}`
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "an IAM URL-encoded document decodes to the JSON", in: strings.ReplaceAll(url.QueryEscape(doc), "+", "%20"), want: doc},
		{name: "a literal plus sign stays a plus sign", in: url.PathEscape(doc), want: doc},
		{name: "a plain JSON document is taken as it is", in: doc, want: doc},
		{name: "a bad escape is an error", in: "%zz", wantErr: true},
		{name: "a decoded document that is not JSON is an error", in: "hello%20world", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePolicyDocument(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLockedVPCs(t *testing.T) {
	render := func(l lockpolicy.Lock) string {
		d, err := lockpolicy.Render(l, lockpolicy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	deny, _ := lockpolicy.DenyAll().JSON()
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{name: "a lock with two VPCs yields both", doc: render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{vpcB, vpcA}}),
			want: []string{vpcA, vpcB}},
		{name: "a VPC-endpoints-only lock yields its VPC", doc: render(lockpolicy.Lock{VPCs: []string{vpcA}}), want: []string{vpcA}},
		{name: "a lock without VPCs yields none", doc: render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}})},
		{name: "the deny-all document yields none", doc: string(deny)},
		{name: "garbage yields none", doc: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LockedVPCs([]byte(tt.doc)); !slices.Equal(got, tt.want) {
				t.Errorf("LockedVPCs = %q, want %q", got, tt.want)
			}
		})
	}
}
