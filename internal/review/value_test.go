package review

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// parse decodes a JSON test value the way templates are decoded.
func parse(t *testing.T, s string) any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func TestRenderMakesTemplateValuesReadable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"a literal string is shown as is", `"203.0.113.7/32"`, "203.0.113.7/32"},
		{"a number keeps its text", `22`, "22"},
		{"a Ref names its target", `{"Ref": "Vpc"}`, "Ref Vpc"},
		{"a pseudo parameter becomes a placeholder", `{"Ref": "AWS::Region"}`, "<region>"},
		{"a GetAtt list becomes resource.attribute", `{"Fn::GetAtt": ["lukeB2AE838D", "PublicIp"]}`, "lukeB2AE838D.PublicIp"},
		{"a GetAtt string becomes resource.attribute", `{"Fn::GetAtt": "Eip.PublicIp"}`, "Eip.PublicIp"},
		{"an import names the export", `{"Fn::ImportValue": "battleground:Vpc"}`, "import battleground:Vpc"},
		{"a partition join reads like an ARN",
			`{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/AmazonEC2ReadOnlyAccess"]]}`,
			"arn:<partition>:iam::aws:policy/AmazonEC2ReadOnlyAccess"},
		{"references inside a join become placeholders", `{"Fn::Join": ["", [{"Ref": "Eip"}, "/32"]]}`, "${Eip}/32"},
		{"a GetAtt inside a join becomes a placeholder", `{"Fn::Join": ["", [{"Fn::GetAtt": ["I", "PublicIp"]}, "/32"]]}`, "${I.PublicIp}/32"},
		{"a Sub string shows pseudo parameters readably", `{"Fn::Sub": "ec2.${AWS::URLSuffix}"}`, "ec2.<url-suffix>"},
		{"a Sub with variables substitutes them", `{"Fn::Sub": ["${Ip}/32", {"Ip": {"Fn::GetAtt": ["I", "PublicIp"]}}]}`, "${I.PublicIp}/32"},
		{"a Select of GetAZs reads as a call", `{"Fn::Select": [0, {"Fn::GetAZs": ""}]}`, `Select(0, GetAZs(""))`},
		{"a list is bracketed", `["a", {"Ref": "B"}]`, "[a, Ref B]"},
		{"an object that is not a function is compact JSON", `{"Key": "Name", "Value": "x"}`, `{"Key":"Name","Value":"x"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Render(parse(t, tc.in)); got != tc.want {
				t.Errorf("Render(%s) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseProtocolReadsPortsAndProtocols(t *testing.T) {
	tests := []struct {
		name      string
		rule      string
		wantProto string
		wantText  string
		ssh       bool
		all       bool
	}{
		{"tcp 22 covers SSH", `{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}`, "tcp", "22", true, false},
		{"protocol number 6 is tcp", `{"IpProtocol": "6", "FromPort": 3389, "ToPort": 3389}`, "tcp", "3389", false, false},
		{"protocol -1 is all traffic", `{"IpProtocol": "-1"}`, "all", "all", true, true},
		{"numeric protocol -1 is all traffic", `{"IpProtocol": -1}`, "all", "all", true, true},
		{"a 0-65535 range is every port", `{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535}`, "tcp", "all", true, true},
		{"a range including 22 covers SSH", `{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1024}`, "tcp", "1-1024", true, false},
		{"string ports are read as numbers", `{"IpProtocol": "tcp", "FromPort": "443", "ToPort": "443"}`, "tcp", "443", false, false},
		{"udp 22 is not SSH", `{"IpProtocol": "udp", "FromPort": 22, "ToPort": 22}`, "udp", "22", false, false},
		{"icmp shows its type", `{"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1}`, "icmp", "type 8", false, false},
		{"ports from a parameter are shown but not trusted", `{"IpProtocol": "tcp", "FromPort": {"Ref": "P"}, "ToPort": {"Ref": "P"}}`, "tcp", "Ref P-Ref P", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := parse(t, tc.rule).(map[string]any)
			p := parseProtocol(m)
			if p.proto != tc.wantProto || p.text != tc.wantText || p.covers(portSSH) != tc.ssh || p.all != tc.all {
				t.Errorf("parseProtocol(%s) = proto %q ports %q ssh %v all %v; want %q %q %v %v",
					tc.rule, p.proto, p.text, p.covers(portSSH), p.all, tc.wantProto, tc.wantText, tc.ssh, tc.all)
			}
		})
	}
}

func TestTrustPoliciesThatNameEC2AreRecognised(t *testing.T) {
	tests := []struct {
		name    string
		service string
		want    bool
	}{
		{"a plain service string trusts EC2", `"ec2.amazonaws.com"`, true},
		{"a service list containing EC2 trusts EC2", `["ssm.amazonaws.com", "ec2.amazonaws.com"]`, true},
		{"a join with the URL suffix trusts EC2", `{"Fn::Join": ["", ["ec2.", {"Ref": "AWS::URLSuffix"}]]}`, true},
		{"a Sub with the URL suffix trusts EC2", `{"Fn::Sub": "ec2.${AWS::URLSuffix}"}`, true},
		{"an Fn::If between EC2 and Lambda trusts EC2", `{"Fn::If": ["C", "lambda.amazonaws.com", "ec2.amazonaws.com"]}`, true},
		{"the China partition's name trusts EC2", `"ec2.amazonaws.com.cn"`, true},
		{"a Lambda role does not trust EC2", `"lambda.amazonaws.com"`, false},
		{"EC2 Fleet is not EC2 itself", `"ec2fleet.amazonaws.com"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := parse(t, `{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": `+tc.service+`}}]}`)
			r := &resource{props: map[string]any{"AssumeRolePolicyDocument": doc}}
			if got := trustsEC2(r); got != tc.want {
				t.Errorf("trustsEC2 with Service %s = %v, want %v", tc.service, got, tc.want)
			}
		})
	}
}

func TestLiteralFoldsStackNames(t *testing.T) {
	st := &Stack{StackName: "network"}
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"a Sub of the stack name folds", `{"Fn::Sub": "${AWS::StackName}-VpcId"}`, "network-VpcId", true},
		{"a Join of the stack name folds", `{"Fn::Join": [":", [{"Ref": "AWS::StackName"}, "VpcId"]]}`, "network:VpcId", true},
		{"a Sub of a parameter does not fold", `{"Fn::Sub": "${Env}-VpcId"}`, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := literal(st, parse(t, tc.in))
			if got != tc.want || ok != tc.ok {
				t.Errorf("literal(%s) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestDecodeJSONKeepsNumbersExact(t *testing.T) {
	v, err := decodeJSON([]byte(`{"FromPort": 22}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.(map[string]any)["FromPort"].(json.Number); !ok {
		t.Fatalf("FromPort decoded as %T, want json.Number", v.(map[string]any)["FromPort"])
	}
}

// evalStack is a stack with parameters, conditions and mappings for evaluator tests.
func evalStack(t *testing.T) *Stack {
	t.Helper()
	tmpl := parse(t, `{
		"Parameters": {
			"Env": {"Type": "String", "Default": "prod", "AllowedValues": ["dev", "prod"]},
			"Cidr": {"Type": "String", "Default": "10.0.0.0/16", "AllowedPattern": "(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})/(\\d{1,2})"},
			"Free": {"Type": "String"},
			"Cidrs": {"Type": "CommaDelimitedList", "Default": "10.0.0.0/8, 0.0.0.0/0"}
		},
		"Conditions": {
			"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
			"InUsEast1": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
		},
		"Mappings": {
			"Partition": {"aws": {"EC2": "ec2.amazonaws.com"}, "aws-cn": {"EC2": "ec2.amazonaws.com.cn"}, "aws-us-gov": {"EC2": "ec2.amazonaws.com"}},
			"ByEnv": {"dev": {"Cidr": "0.0.0.0/0"}, "prod": {"Cidr": "10.1.0.0/16"}}
		},
		"Resources": {"Sg": {"Type": "AWS::EC2::SecurityGroup"}}
	}`).(map[string]any)
	st := &Stack{Name: "s", StackName: "s"}
	if err := st.index(tmpl, "s.template.json"); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestTheEvaluatorFindsEveryValueATemplateCanDeploy(t *testing.T) {
	st := evalStack(t)
	tests := []struct {
		name string
		in   string
		want []string // outcome texts, "*" marking the ones deployed by default
	}{
		{"a literal is itself", `"22"`, []string{"*22"}},
		{"a pseudo parameter in a Sub is a placeholder", `{"Fn::Sub": "ec2.${AWS::URLSuffix}"}`, []string{"*ec2.<url-suffix>"}},
		{"a Sub escape stays literal", `{"Fn::Sub": "${!Literal}-${AWS::StackName}"}`, []string{"*${Literal}-s"}},
		{"a mapping keyed by the partition yields every entry once", `{"Fn::FindInMap": ["Partition", {"Ref": "AWS::Partition"}, "EC2"]}`,
			[]string{"*ec2.amazonaws.com", "*ec2.amazonaws.com.cn"}},
		{"a mapping with literal keys yields its entry", `{"Fn::FindInMap": ["ByEnv", "prod", "Cidr"]}`, []string{"*10.1.0.0/16"}},
		{"a mapping keyed by a parameter follows the parameter", `{"Fn::FindInMap": ["ByEnv", {"Ref": "Env"}, "Cidr"]}`,
			[]string{"*10.1.0.0/16", "0.0.0.0/0"}},
		{"a parameter with AllowedValues takes its Default, then the others", `{"Ref": "Env"}`, []string{"*prod", "dev"}},
		{"a parameter with a pattern takes its Default, then any value", `{"Ref": "Cidr"}`, []string{"*10.0.0.0/16", "${Cidr}"}},
		{"a parameter without Default is a choice", `{"Ref": "Free"}`, []string{"${Free}"}},
		{"an Fn::If on a parameter follows it", `{"Fn::If": ["IsProd", "narrow", "open"]}`, []string{"*narrow", "open"}},
		{"an Fn::If the review cannot decide takes both branches", `{"Fn::If": ["InUsEast1", "a", "b"]}`, []string{"*a", "*b"}},
		{"a join of parameters combines their values", `{"Fn::Join": ["-", [{"Ref": "Env"}, {"Fn::If": ["IsProd", "p", "d"]}]]}`,
			[]string{"*prod-p", "dev-d"}},
		{"a select over a literal list picks its element", `{"Fn::Select": [1, ["a", {"Ref": "Env"}]]}`, []string{"*prod", "dev"}},
		{"a select over a list parameter picks from its Default", `{"Fn::Select": ["1", {"Ref": "Cidrs"}]}`, []string{"*0.0.0.0/0", "${Cidrs}"}},
		{"a split of a literal is its pieces", `{"Fn::Select": [2, {"Fn::Split": [",", "a,b,c"]}]}`, []string{"*c"}},
		{"AWS::NoValue is no value", `{"Ref": "AWS::NoValue"}`, []string{"*<no-value>"}},
		{"a resource attribute is unknown", `{"Fn::GetAtt": ["Sg", "GroupId"]}`, []string{"*${Sg.GroupId}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, o := range newEvaluator().values(st, parse(t, tc.in), nil) {
				s := o.v.text()
				if o.e.isDefault() {
					s = "*" + s
				}
				got = append(got, s)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("values(%s) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFreeValuesMatchWhatTheirPatternAdmits(t *testing.T) {
	st := evalStack(t)
	tests := []struct {
		name string
		in   string
		c    string
		want bool
	}{
		{"the AWS samples' SSHLocation pattern admits 0.0.0.0/0", `{"Ref": "Cidr"}`, "0.0.0.0/0", true},
		{"it does not admit IPv6", `{"Ref": "Cidr"}`, "::/0", false},
		{"an unconstrained parameter admits anything", `{"Ref": "Free"}`, "::/0", true},
		{"a /32 suffix cannot make a /0", `{"Fn::Sub": "${Free}/32"}`, "0.0.0.0/0", false},
		{"a /0 suffix can", `{"Fn::Join": ["", [{"Ref": "Free"}, "/0"]]}`, "0.0.0.0/0", true},
		{"an unknown attribute matches nothing", `{"Fn::GetAtt": ["Sg", "GroupId"]}`, "0.0.0.0/0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := false
			for _, o := range newEvaluator().values(st, parse(t, tc.in), nil) {
				if !o.e.isDefault() || o.v.has(segFree) {
					got = got || o.v.canBe(tc.c)
				}
			}
			if got != tc.want {
				t.Errorf("%s can be %q: %v, want %v", tc.in, tc.c, got, tc.want)
			}
		})
	}
}

func TestAllowedPatternsAreReadAsGoPatterns(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		ok      bool
		admits  bool // 0.0.0.0/0
	}{
		{"the AWS samples' dotted quad", `(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})`, true, true},
		{"anchors are dropped", `^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/32$`, true, false},
		{"the Quick Start bastion's", `^(([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])\.){3}([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])(\/([0-9]|[1-2][0-9]|3[0-2]))$`, true, true},
		{"a possessive quantifier is not Go", `\d++/32`, false, true},
		{"a look-ahead is not Go", `(?!0\.0\.0\.0).*`, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := cfnPattern(tc.pattern)
			if ok != tc.ok {
				t.Fatalf("cfnPattern(%q) ok = %v, want %v", tc.pattern, ok, tc.ok)
			}
			if admits := freeVal("P", p).canBe("0.0.0.0/0"); admits != tc.admits {
				t.Errorf("pattern %q admits 0.0.0.0/0: %v, want %v", tc.pattern, admits, tc.admits)
			}
		})
	}
}

func TestUnionsOfPrefixesAreCheckedAsIntervals(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		bits     int
		want     bool
	}{
		{"two IPv4 halves cover the internet", []string{"0.0.0.0/1", "128.0.0.0/1"}, 32, true},
		{"halves in any order with overlaps", []string{"128.0.0.0/1", "10.0.0.0/8", "0.0.0.0/1", "0.0.0.0/2"}, 32, true},
		{"four quarters", []string{"192.0.0.0/2", "0.0.0.0/2", "128.0.0.0/2", "64.0.0.0/2"}, 32, true},
		{"a gap of one address", []string{"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
			"252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11", "255.224.0.0/12", "255.240.0.0/13",
			"255.248.0.0/14", "255.252.0.0/15", "255.254.0.0/16", "255.255.0.0/17", "255.255.128.0/18", "255.255.192.0/19",
			"255.255.224.0/20", "255.255.240.0/21", "255.255.248.0/22", "255.255.252.0/23", "255.255.254.0/24", "255.255.255.0/25",
			"255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28", "255.255.255.240/29", "255.255.255.248/30",
			"255.255.255.252/31", "255.255.255.254/32"}, 32, false},
		{"the same with the last address", []string{"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
			"252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11", "255.224.0.0/12", "255.240.0.0/13",
			"255.248.0.0/14", "255.252.0.0/15", "255.254.0.0/16", "255.255.0.0/17", "255.255.128.0/18", "255.255.192.0/19",
			"255.255.224.0/20", "255.255.240.0/21", "255.255.248.0/22", "255.255.252.0/23", "255.255.254.0/24", "255.255.255.0/25",
			"255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28", "255.255.255.240/29", "255.255.255.248/30",
			"255.255.255.252/31", "255.255.255.254/32", "255.255.255.255/32"}, 32, true},
		{"the first address missing", []string{"0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/28", "0.0.0.32/27",
			"0.0.0.64/26", "0.0.0.128/25", "0.0.1.0/24", "0.0.2.0/23", "0.0.4.0/22", "0.0.8.0/21", "0.0.16.0/20", "0.0.32.0/19",
			"0.0.64.0/18", "0.0.128.0/17", "0.1.0.0/16", "0.2.0.0/15", "0.4.0.0/14", "0.8.0.0/13", "0.16.0.0/12", "0.32.0.0/11",
			"0.64.0.0/10", "0.128.0.0/9", "1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3",
			"64.0.0.0/2", "128.0.0.0/1"}, 32, false},
		{"one half is not the internet", []string{"0.0.0.0/1"}, 32, false},
		{"two IPv6 halves", []string{"::/1", "8000::/1"}, 128, true},
		{"IPv6 halves written long-form", []string{"0000:0000:0000:0000:0000:0000:0000:0000/1", "8000:0000:0000:0000:0000:0000:0000:0000/1"}, 128, true},
		{"an IPv6 split at /65", []string{"::/1", "8000::/2", "c000::/3", "e000::/3"}, 128, true},
		{"an IPv6 gap at the top", []string{"::/1", "8000::/2", "c000::/3"}, 128, false},
		{"nothing covers nothing", nil, 32, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps []netip.Prefix
			for _, s := range tc.prefixes {
				ps = append(ps, netip.MustParsePrefix(s))
			}
			if got := coversFamily(ps, tc.bits); got != tc.want {
				t.Errorf("coversFamily(%v) = %v, want %v", tc.prefixes, got, tc.want)
			}
		})
	}
}

func TestEvaluationStaysBoundedOnCombinatorialTemplates(t *testing.T) {
	// 20 parameters of 5 values each joined together: 5^20 combinations, cut at maxOutcomes.
	params := map[string]any{}
	var parts []any
	for i := range 20 {
		name := fmt.Sprintf("P%d", i)
		params[name] = map[string]any{"Type": "String", "Default": "a", "AllowedValues": []any{"a", "b", "c", "d", "e"}}
		parts = append(parts, map[string]any{"Ref": name})
	}
	// 30 conditions, each the And of the previous one and an undecidable comparison.
	conds := map[string]any{"C0": map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "AWS::Region"}, "x"}}}
	for i := 1; i < 30; i++ {
		conds[fmt.Sprintf("C%d", i)] = map[string]any{"Fn::Or": []any{
			map[string]any{"Condition": fmt.Sprintf("C%d", i-1)},
			map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "AWS::AccountId"}, fmt.Sprint(i)}},
		}}
	}
	st := &Stack{Name: "s", params: params, conditions: conds, resources: map[string]*resource{}}
	ev := newEvaluator()
	if n := len(ev.values(st, map[string]any{"Fn::Join": []any{"", parts}}, nil)); n == 0 || n > maxOutcomes {
		t.Errorf("join of 20 parameters: %d outcomes, want 1..%d", n, maxOutcomes)
	}
	if n := len(ev.condition(st, "C29", nil)); n == 0 || n > 2*maxOutcomes {
		t.Errorf("chain of 30 conditions: %d outcomes", n)
	}
}
