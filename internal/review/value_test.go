package review

import (
	"encoding/json"
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
