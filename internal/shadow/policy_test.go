package shadow

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// TestCompileRefuses checks that every document outside the vocabulary is
// an error that names what was found, never a policy that allows.
func TestCompileRefuses(t *testing.T) {
	const ok = `"Sid":"S","Effect":"Deny","Action":"*","Resource":"*"`
	doc := func(stmt string) string {
		return `{"Version":"2012-10-17","Statement":[{` + stmt + `}]}`
	}
	tests := []struct {
		name string
		doc  string
		is   error
		says string
	}{
		{"an Allow statement is refused", doc(`"Sid":"S","Effect":"Allow","Action":"*","Resource":"*"`), ErrUnsupported, `Effect "Allow"`},
		{"a lower-case deny is refused", doc(`"Sid":"S","Effect":"deny","Action":"*","Resource":"*"`), ErrUnsupported, `Effect "deny"`},
		{"an action pattern is refused", doc(`"Sid":"S","Effect":"Deny","Action":"s3:*","Resource":"*"`), ErrUnsupported, `Action "s3:*"`},
		{"an action list is refused", doc(`"Sid":"S","Effect":"Deny","Action":["*","s3:GetObject"],"Resource":"*"`), ErrUnsupported, `Action ["*", "s3:GetObject"]`},
		{"NotAction is refused", doc(`"Sid":"S","Effect":"Deny","NotAction":"iam:*","Resource":"*"`), ErrUnsupported, "NotAction"},
		{"NotResource is refused", doc(`"Sid":"S","Effect":"Deny","Action":"*","NotResource":"*"`), ErrUnsupported, "NotResource"},
		{"a Principal is refused", doc(ok + `,"Principal":"*"`), ErrUnsupported, "Principal"},
		{"a resource ARN is refused", doc(`"Sid":"S","Effect":"Deny","Action":"*","Resource":"arn:aws:s3:::b"`), ErrUnsupported, `Resource "arn:aws:s3:::b"`},
		{"an unknown operator is refused", doc(ok + `,"Condition":{"StringLike":{"aws:SourceVpc":"vpc-*"}}`), ErrUnsupported, `operator "StringLike"`},
		{"an operator in the wrong case is refused", doc(ok + `,"Condition":{"stringnotequals":{"aws:SourceVpc":"vpc-1"}}`), ErrUnsupported, `operator "stringnotequals"`},
		{"a set operator is refused", doc(ok + `,"Condition":{"ForAnyValue:StringEquals":{"aws:SourceVpc":"vpc-1"}}`), ErrUnsupported, `"ForAnyValue:StringEquals"`},
		{"a numeric operator is refused", doc(ok + `,"Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}`), ErrUnsupported, `"NumericLessThan"`},
		{"an unknown key is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}`), ErrUnsupported, `key "aws:RequestedRegion"`},
		{"a variable of an unknown key is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:SourceVpc":"${aws:username}"}}`), ErrUnsupported, "${aws:username}"},
		{"IpAddress on a string key is refused", doc(ok + `,"Condition":{"IpAddress":{"aws:SourceVpc":"10.0.0.0/8"}}`), ErrUnsupported, "does not apply"},
		{"Bool on a string key is refused", doc(ok + `,"Condition":{"Bool":{"aws:SourceVpc":"true"}}`), ErrUnsupported, "does not apply"},
		{"NullIfExists is refused", doc(ok + `,"Condition":{"NullIfExists":{"aws:SourceIp":"true"}}`), ErrInvalidPolicy, "NullIfExists"},
		{"a Null value other than true or false is refused", doc(ok + `,"Condition":{"Null":{"aws:SourceIp":"yes"}}`), ErrInvalidPolicy, `"yes"`},
		{"a bad CIDR is refused", doc(ok + `,"Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.300/32"}}`), ErrInvalidPolicy, "203.0.113.300"},
		{"a bare IPv6 address is refused", doc(ok + `,"Condition":{"NotIpAddress":{"aws:SourceIp":"2001:db8::1"}}`), ErrInvalidPolicy, "prefix length"},
		{"an empty value list is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:SourceVpc":[]}}`), ErrInvalidPolicy, "empty value list"},
		{"a null value is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:SourceVpc":null}}`), ErrInvalidPolicy, "null"},
		{"an unterminated variable is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:SourceVpc":"${aws:SourceVpce"}}`), ErrInvalidPolicy, "unterminated"},
		{"a literal ARN value that is not an ARN is refused", doc(ok + `,"Condition":{"ArnLike":{"aws:PrincipalArn":"role/x"}}`), ErrInvalidPolicy, "not an ARN"},
		{"duplicate JSON keys are refused", `{"Version":"2012-10-17","Statement":[{` + ok + `,"Condition":{"Null":{"aws:SourceIp":"true"},"Null":{"aws:SourceIp":"false"}}}]}`, ErrInvalidPolicy, `"Null" appears twice`},
		{"the same key in two spellings is refused", doc(ok + `,"Condition":{"Null":{"aws:SourceIp":"true","AWS:SOURCEIP":"false"}}`), ErrInvalidPolicy, "same key"},
		{"duplicate Sids are refused", `{"Version":"2012-10-17","Statement":[{` + ok + `},{` + ok + `}]}`, ErrInvalidPolicy, `Sid "S" is used twice`},
		{"a Sid with punctuation is refused", doc(`"Sid":"S|<b>","Effect":"Deny","Action":"*","Resource":"*"`), ErrInvalidPolicy, "letters and digits"},
		{"the 2008 language is refused", `{"Version":"2008-10-17","Statement":[{` + ok + `}]}`, ErrUnsupported, `Version "2008-10-17"`},
		{"a document without Version is refused", `{"Statement":[{` + ok + `}]}`, ErrInvalidPolicy, "no Version"},
		{"a document without statements is refused", `{"Version":"2012-10-17","Statement":[]}`, ErrInvalidPolicy, "Statement is empty"},
		{"an unknown top-level element is refused", `{"Version":"2012-10-17","Statement":[{` + ok + `}],"Extra":1}`, ErrUnsupported, `"Extra"`},
		{"a statement without Action is refused", doc(`"Sid":"S","Effect":"Deny","Resource":"*"`), ErrInvalidPolicy, "no Action"},
		{"malformed JSON is refused", `{"Version":"2012-10-17","Statement":[{`, ErrInvalidPolicy, ""},
		{"trailing data is refused", doc(ok) + `{}`, ErrInvalidPolicy, "after the document"},
		{"a JSON array is refused", `[]`, ErrInvalidPolicy, "not an object"},
		{"deep nesting is refused", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), ErrInvalidPolicy, "too deeply"},
		{"a huge document is refused", doc(ok + `,"Condition":{"StringEquals":{"aws:SourceVpc":"` + strings.Repeat("x", MaxPolicyBytes) + `"}}`), ErrInvalidPolicy, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := CompileJSON([]byte(tt.doc))
			if err == nil {
				t.Fatalf("CompileJSON succeeded with statements %q", p.Statements())
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// TestCompileAccepts checks the shapes IAM allows and the renderer does
// not produce.
func TestCompileAccepts(t *testing.T) {
	for name, doc := range map[string]string{
		"a single statement object":      `{"Version":"2012-10-17","Id":"x","Statement":{"Effect":"Deny","Action":["*"],"Resource":["*"]}}`,
		"JSON booleans as Bool values":   `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:ViaAWSService":false}}}]}`,
		"a key in another letter case":   `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"AWS:SourceIP":"true"}}}]}`,
		"every lock the renderer writes": `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := CompileJSON([]byte(doc)); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, l := range []lockpolicy.Lock{
		{SourceIPs: []string{publicIP}, VPCs: []string{instanceVPC}},
		{VPCs: []string{instanceVPC}, Trust: lockpolicy.Trust{EgressPrefixes: []string{centralEgress}, SharedVPCEndpoints: []string{sharedEndpoint}}},
	} {
		compile(t, render(t, l))
	}
	compile(t, lockpolicy.DenyAll())
}

// TestOperators checks the semantics of each operator on present, absent
// and unknown keys, one condition at a time.
func TestOperators(t *testing.T) {
	tests := []struct {
		name string
		cond string // the Condition element
		ctx  map[string]any
		want Decision
	}{
		{"StringEquals matches one of its values", `{"StringEquals":{"aws:SourceVpc":["vpc-1","vpc-2"]}}`, map[string]any{"aws:SourceVpc": "vpc-2"}, Denied},
		{"StringEquals is case-sensitive", `{"StringEquals":{"aws:SourceVpc":"VPC-1"}}`, map[string]any{"aws:SourceVpc": "vpc-1"}, Allowed},
		{"StringEquals is false on an absent key", `{"StringEquals":{"aws:SourceVpc":"vpc-1"}}`, nil, Allowed},
		{"StringEqualsIfExists is true on an absent key", `{"StringEqualsIfExists":{"aws:SourceVpc":"vpc-1"}}`, nil, Denied},
		{"StringNotEquals is true when no value matches", `{"StringNotEquals":{"aws:SourceVpc":["vpc-1","vpc-2"]}}`, map[string]any{"aws:SourceVpc": "vpc-3"}, Denied},
		{"StringNotEquals is false when a value matches", `{"StringNotEquals":{"aws:SourceVpc":["vpc-1","vpc-2"]}}`, map[string]any{"aws:SourceVpc": "vpc-1"}, Allowed},
		{"StringNotEquals is true on an absent key", `{"StringNotEquals":{"aws:SourceVpc":"vpc-1"}}`, nil, Denied},
		{"keys of one operator are ANDed", `{"StringNotEquals":{"aws:SourceVpc":"vpc-1","aws:SourceVpce":"vpce-1"}}`,
			map[string]any{"aws:SourceVpc": "vpc-2", "aws:SourceVpce": "vpce-1"}, Allowed},
		{"a policy variable is substituted", `{"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}"}}`,
			map[string]any{"aws:SourceVpc": "vpc-1", "aws:Ec2InstanceSourceVpc": "vpc-1"}, Allowed},
		{"a variable inside a longer value is substituted", `{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:role/x"}}`,
			map[string]any{"aws:PrincipalAccount": account, "aws:PrincipalArn": "arn:aws:iam::" + account + ":role/x"}, Denied},
		{"a variable of an absent key is undetermined", `{"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}"}}`,
			map[string]any{"aws:Ec2InstanceSourceVpc": "vpc-1"}, Undetermined},
		{"a variable of an absent key takes its default", `{"StringEquals":{"aws:SourceVpce":"${aws:SourceVpc, 'none'}"}}`,
			map[string]any{"aws:SourceVpce": "none"}, Denied},
		{"${*} is a literal star", `{"StringEquals":{"aws:SourceVpce":"a${*}b"}}`, map[string]any{"aws:SourceVpce": "a*b"}, Denied},
		{"a Null check settles a statement whose variable is absent", `{"StringNotEquals":{"aws:Ec2InstanceSourceVpc":"${aws:SourceVpc}"},"Null":{"aws:SourceVpc":"false"}}`,
			map[string]any{"aws:Ec2InstanceSourceVpc": "vpc-1"}, Allowed},
		{"IpAddress matches an IPv4 CIDR", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, map[string]any{"aws:SourceIp": "203.0.113.9"}, Denied},
		{"a bare IPv4 address is a /32", `{"IpAddress":{"aws:SourceIp":"203.0.113.1"}}`, map[string]any{"aws:SourceIp": "203.0.113.2"}, Allowed},
		{"IpAddress matches an IPv6 CIDR", `{"IpAddress":{"aws:SourceIp":"2001:db8:dead::/48"}}`, map[string]any{"aws:SourceIp": "2001:db8:dead:1::5"}, Denied},
		{"an IPv4 address is not in an IPv6 CIDR", `{"IpAddress":{"aws:SourceIp":"::/0"}}`, map[string]any{"aws:SourceIp": "203.0.113.2"}, Allowed},
		{"IPv4-mapped addresses are IPv4", `{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, map[string]any{"aws:SourceIp": "::ffff:203.0.113.2"}, Denied},
		{"NotIpAddress is true outside every CIDR", `{"NotIpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}`, map[string]any{"aws:SourceIp": "198.51.100.1"}, Denied},
		{"NotIpAddress is true on an absent key", `{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, nil, Denied},
		{"Null true tests absence", `{"Null":{"aws:SourceIp":"true"}}`, map[string]any{"aws:SourceIp": "203.0.113.2"}, Allowed},
		{"Null false tests presence", `{"Null":{"aws:SourceIp":"false"}}`, map[string]any{"aws:SourceIp": "203.0.113.2"}, Denied},
		{"Bool compares booleans", `{"Bool":{"aws:ViaAWSService":"true"}}`, map[string]any{"aws:ViaAWSService": "false"}, Allowed},
		{"Bool is false on an absent key", `{"Bool":{"aws:ViaAWSService":"false"}}`, nil, Allowed},
		{"BoolIfExists is true on an absent key", `{"BoolIfExists":{"aws:ViaAWSService":"false"}}`, nil, Denied},
		{"ArnEquals compares the whole ARN", `{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/a"}}`,
			map[string]any{"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ab"}, Allowed},
		{"ArnLike matches wildcards field by field", `{"ArnLike":{"ec2:SourceInstanceARN":"arn:aws:ec2:*:111122223333:instance/i-?abc*"}}`,
			map[string]any{"ec2:SourceInstanceARN": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc1234"}, Denied},
		{"a star does not cross an ARN field", `{"ArnLike":{"ec2:SourceInstanceARN":"arn:aws:*:111122223333:instance:*"}}`,
			map[string]any{"ec2:SourceInstanceARN": "arn:aws:ec2:eu-west-1:111122223333:instance:i-0abc1234"}, Allowed},
		{"ArnLike is case-sensitive", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/Admin"}}`,
			map[string]any{"aws:PrincipalArn": "arn:aws:iam::111122223333:role/admin"}, Allowed},
		{"ArnNotEquals is true on an absent key", `{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/a"}}`, nil, Denied},
		{"ArnNotLike is false when the ARN matches", `{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}`,
			map[string]any{"aws:PrincipalArn": "arn:aws:iam::111122223333:role/a"}, Allowed},
		{"a principal tag matches case-insensitively by key", `{"StringEquals":{"aws:PrincipalTag/Team":"blue"}}`,
			map[string]any{"aws:PrincipalTag/team": "blue"}, Denied},
		{"a statement without conditions denies everything", ``, nil, Denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmt := `{"Sid":"S","Effect":"Deny","Action":"*","Resource":"*"`
			if tt.cond != "" {
				stmt += `,"Condition":` + tt.cond
			}
			p, err := CompileJSON([]byte(`{"Version":"2012-10-17","Statement":[` + stmt + `}]}`))
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewRequest(tt.ctx)
			if err != nil {
				t.Fatal(err)
			}
			v := p.Evaluate(&r)
			if v.Decision != tt.want {
				t.Fatalf("decision %v (unknown %v), want %v", v.Decision, v.Unknown, tt.want)
			}
			if tt.want == Denied && !slices.Equal(v.Sids, []string{"S"}) {
				t.Errorf("denied by %q, want [S]", v.Sids)
			}
			if tt.want == Undetermined && (len(v.Unknown) != 1 || v.Unknown[0].Sid != "S" || v.Unknown[0].Reason == "") {
				t.Errorf("unknown %+v, want one reason for S", v.Unknown)
			}
		})
	}
}

// TestKleene checks that an unknown value leaves a statement open only when
// the statement's other conditions do not settle it, and that a Denied
// verdict wins over open statements.
func TestKleene(t *testing.T) {
	p, err := CompileJSON([]byte(`{"Version":"2012-10-17","Statement":[
		{"Sid":"NeedsTags","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"blue"},"Null":{"aws:SourceIp":"false"}}},
		{"Sid":"Internet","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRequest(map[string]any{"aws:SourceIp": "203.0.113.5"})
	if err != nil {
		t.Fatal(err)
	}
	r.tagsKnown = false
	if v := p.Evaluate(&r); v.Decision != Undetermined || len(v.Unknown) != 1 || v.Unknown[0].Key != "aws:PrincipalTag/team" {
		t.Errorf("inside the range, unknown tags: %+v, want undetermined by NeedsTags", v)
	}
	r.keys[keySourceIP] = ipValue(mustAddr("198.51.100.1"))
	if v := p.Evaluate(&r); v.Decision != Denied || !slices.Equal(v.Sids, []string{"Internet"}) || len(v.Unknown) != 1 {
		t.Errorf("outside the range, unknown tags: %+v, want denied by Internet, NeedsTags open", v)
	}
	r.keys[keySourceIP] = absentValue()
	if v := p.Evaluate(&r); v.Decision != Denied || len(v.Unknown) != 0 {
		t.Errorf("no source IP: %+v, want denied by Internet with nothing open (Null settles NeedsTags)", v)
	}
	var zero Request
	if v := p.Evaluate(&zero); v.Decision != Undetermined {
		t.Errorf("the zero Request: %+v, want undetermined: nothing is known", v)
	}
}
