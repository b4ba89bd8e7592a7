package review

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestIngressIsJudgedOnWhatTheTemplateCanDeploy reviews templates with the shapes real
// templates use to open SSH or RDP: parameters (at their Default, at their other values),
// conditions and Fn::If, mappings, Fn::Join, Fn::Sub and Fn::Select, security groups attached
// through network interfaces, launch templates, launch configurations and EKS node groups,
// prefix lists, rules whose union is the internet, IPv6 written long-form, tcp without ports.
// Each case names every DEF-SG finding the template must get (rule and resource), and text its
// messages must contain. The templates' sources are in their Description and Metadata.
func TestIngressIsJudgedOnWhatTheTemplateCanDeploy(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
		says []string
	}{
		{
			// aws-cloudformation/aws-cloudformation-templates EC2/EC2InstanceWithSecurityGroupSample.json
			// (Apache-2.0): SSHLocation defaults to 192.168.1.0/0, a /0.
			name: "the AWS sample's SSHLocation whose Default is a /0 is an error that names the parameter",
			file: "ec2-instance-with-security-group-sample.template.json",
			want: []string{"DEF-SG-1 InstanceSecurityGroup"},
			says: []string{"from `192.168.1.0/0` (the Default of parameter `SSHLocation`), the whole internet", "it reaches instance"},
		},
		{
			// aws-cloudformation/aws-cloudformation-templates
			// aws/services/AutoScaling/AutoScalingMultiAZWithNotifications.json (Apache-2.0).
			name: "a launch configuration's security group open by SSHLocation's Default reaches its Auto Scaling group",
			file: "autoscaling-launch-configuration-sample.template.json",
			want: []string{"DEF-SG-1 InstanceSecurityGroup"},
			says: []string{"from `0.0.0.0/0` (the Default of parameter `SSHLocation`)", "it reaches Auto Scaling group `autoscaling-launch-configuration-sample/WebServerGroup`"},
		},
		{
			name: "parameters are judged on their Default, their AllowedValues, their AllowedPattern or anything",
			file: "ssh-location-parameters.template.json",
			want: []string{
				"DEF-SG-3 SampleGroup", "DEF-SG-3 BastionGroup", "DEF-SG-3 AnyGroup", "DEF-SG-3 JavaGroup", "DEF-SG-3 Ipv6Group",
				"DEF-SG-1 ValuesGroup", "DEF-SG-2 ValuesGroup", "DEF-SG-3 ValuesGroup",
			},
			says: []string{
				"can allow SSH (tcp 22) from `0.0.0.0/0`, the whole internet, when parameter `SSHLocation` is set to `0.0.0.0/0` (its AllowedPattern admits it)",
				"parameter `RemoteAccessCIDR` is set to `0.0.0.0/0` (its AllowedPattern admits it; it has no Default)",
				"parameter `AnyCidr` is set to `0.0.0.0/0` (nothing constrains it)",
				"parameter `JavaPattern` is set to `0.0.0.0/0` (its AllowedPattern is not a pattern Go can read, so any value counts)",
				"from `::/0`, the whole internet, when parameter `Ipv6Source` is set to `::/0`",
				"parameter `AccessCidr` is set to `0.0.0.0/0` (one of its AllowedValues)",
				"allows all traffic (every protocol and port) from `0.0.0.0/0` (the Default of parameter `OpenByDefault`)",
				"from `10.0.0.0/16` (the Default of parameter `AccessCidr`), 65,536 addresses",
			},
		},
		{
			name: "conditions are judged both ways: parameters that flip them warn, what the review cannot decide errs",
			file: "ssh-conditions.template.json",
			want: []string{
				"DEF-SG-3 SshIngress", "DEF-SG-3 ToggleGroup", "DEF-SG-1 RegionGroup", "DEF-SG-3 EnvGroup", "DEF-SG-3 RdpIngress",
			},
			says: []string{
				"(rule `SshIngress`) can allow SSH (tcp 22) from `0.0.0.0/0`, the whole internet, when parameter `SshCidr` is set to `0.0.0.0/0`",
				"when parameter `EnableSSH` is set to `true` (one of its AllowedValues)",
				"the whole internet (when condition `IsUsEast1` is true)",
				"when parameter `Env` is set to `dev` (one of its AllowedValues);",
				"when parameter `Env` is set to `dev` (one of its AllowedValues) and parameter `Lockdown` is set to `no`",
			},
		},
		{
			name: "mappings, joins, subs and selects are evaluated, parameters that are only part of a source included",
			file: "ssh-mappings-and-functions.template.json",
			want: []string{
				"DEF-SG-2 MapGroup", "DEF-SG-3 MapGroup", "DEF-SG-1 RegionIngress", "DEF-SG-2 LiteralKeyIngress",
				"DEF-SG-2 FunctionGroup", "DEF-SG-3 FunctionGroup", "DEF-SG-3 FunctionGroup", "DEF-SG-1 FunctionGroup", "DEF-SG-1 FunctionGroup",
			},
			says: []string{
				"from `10.20.0.0/16` (the Default of parameter `Env`)",
				"when parameter `Env` is set to `dev`",
				"(when mapping `RegionSources` yields its `eu-west-1`.`Cidr` entry)",
				"from `10.1.0.0/16` (the Default of parameters `BaseAddress`, `PrefixLength`)",
				"from `10.1.0.0/0`, the whole internet, when parameter `PrefixLength` is set to `0`",
				"allows RDP (tcp 3389) from `0.0.0.0/0`, the whole internet;",
				"from `0.0.0.0/0` (the Default of parameter `AllowedCidrs`)",
				"can allow RDP (tcp 3389) from `198.51.100.7/0`, the whole internet, when parameter `AdminBits` is set to a value that makes the source `198.51.100.7/0` (nothing constrains it)",
			},
		},
		{
			name: "groups attached through network interfaces, launch template interfaces and Fn::If reach their instances",
			file: "sg-attachments.template.json",
			want: []string{"DEF-SG-1 EniGroup", "DEF-SG-1 FleetGroup", "DEF-SG-1 DebugGroup"},
			says: []string{
				"`sg-attachments/EniGroup` allows SSH (tcp 22) from `0.0.0.0/0`, the whole internet; it reaches instance `sg-attachments/Eni`",
				"it reaches Auto Scaling group `sg-attachments/Fleet`",
				"`sg-attachments/DebugGroup` allows all traffic (every protocol and port) from `0.0.0.0/0`, the whole internet; it reaches instance `sg-attachments/Toggle`",
			},
		},
		{
			// eksctl-io/eksctl pkg/cfn/builder/testdata/launch_template/ssh_enabled.json (Apache-2.0).
			name: "an EKS managed node group's launch template attaches eksctl's open SSH group",
			file: "eksctl-managed-nodegroup-launch-template.template.json",
			want: []string{"DEF-SG-1 SSH", "DEF-SG-1 SSH"},
			says: []string{"from `0.0.0.0/0`, the whole internet; it reaches EKS node group", "from `::/0`, the whole internet; it reaches EKS node group"},
		},
		{
			// eksctl 0.25's managed node group stack with SSH access (Apache-2.0).
			name: "an EKS node group's remote access without source groups opens SSH to the internet",
			file: "eksctl-managed-nodegroup-remote-access.template.json",
			want: []string{"DEF-SG-1 ManagedNodeGroup"},
			says: []string{"has RemoteAccess with an Ec2SshKey and no SourceSecurityGroups: EKS opens SSH (tcp 22) on its nodes to `0.0.0.0/0`"},
		},
		{
			name: "prefix lists, unions of ranges, long-form IPv6, /0 with host bits and tcp without ports open SSH",
			file: "sg-sources.template.json",
			want: []string{
				"DEF-SG-1 PrefixListGroup", "DEF-SG-1 HalvesGroup", "DEF-SG-1 ThirdsGroup", "DEF-SG-1 Ipv6HalvesGroup",
				"DEF-SG-1 LongFormGroup", "DEF-SG-1 LongFormGroup", "DEF-SG-1 LongFormGroup", "DEF-SG-1 NoPortsGroup",
				"DEF-SG-2 GapGroup", "DEF-SG-2 GapGroup", "DEF-SG-1 AllPortsGroup",
			},
			says: []string{
				"from prefix list `sg-sources/Partners` (entry `0.0.0.0/0`), the whole internet",
				"allows SSH (tcp 22) from `0.0.0.0/1`, `128.0.0.0/1` (declared by `HalvesGroup`), which together cover the whole IPv4 internet",
				"allows RDP (tcp 3389) from `0.0.0.0/2`, `64.0.0.0/2`, `128.0.0.0/1` (declared by `ThirdsGroup`, `ThirdsHigh`, `ThirdsLow`), which together cover the whole IPv4 internet",
				"from `::/1`, `8000::/1` (declared by `Ipv6HalvesGroup`), which together cover the whole IPv6 internet",
				"from `0000:0000:0000:0000:0000:0000:0000:0000/0`, the whole internet",
				"allows RDP (tcp 3389) from `2001:DB8::/0`, the whole internet",
				"from `192.168.1.0/0`, the whole internet",
				"`sg-sources/NoPortsGroup` allows every tcp port, SSH (22) and RDP (3389) included from `0.0.0.0/0`",
				"`sg-sources/AllPortsGroup` allows every port (SSH and RDP included) from `0.0.0.0/1`, `128.0.0.0/1`",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Review(filepath.Join("testdata", "templates", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got, msgs []string
			for _, f := range rep.Findings {
				if strings.HasPrefix(f.Rule, "DEF-SG-") {
					got = append(got, f.Rule+" "+f.Resource)
					msgs = append(msgs, f.Message)
				}
			}
			want := slices.Clone(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("DEF-SG findings:\n got %q\nwant %q\nmessages:\n%s", got, want, strings.Join(msgs, "\n"))
			}
			all := strings.Join(msgs, "\n")
			for _, s := range tc.says {
				if !strings.Contains(all, s) {
					t.Errorf("no finding says %q; messages:\n%s", s, all)
				}
			}
		})
	}
}

// TestEKSNodeRolesTrustEC2ThroughMappings checks that eksctl's node role, whose trust policy
// names EC2 through Fn::FindInMap keyed by AWS::Partition, is an EC2 role used by its node group.
func TestEKSNodeRolesTrustEC2ThroughMappings(t *testing.T) {
	for _, file := range []string{"eksctl-managed-nodegroup-launch-template.template.json", "eksctl-managed-nodegroup-remote-access.template.json"} {
		t.Run(file, func(t *testing.T) {
			rep, err := Review(filepath.Join("testdata", "templates", file))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Roles) != 1 || rep.Roles[0].LogicalID != "NodeInstanceRole" {
				t.Fatalf("roles = %+v, want NodeInstanceRole", rep.Roles)
			}
			ins := rep.Roles[0].Instances
			if len(ins) != 1 || ins[0].LogicalID != "ManagedNodeGroup" || ins[0].Kind != kindNodegroup {
				t.Fatalf("NodeInstanceRole's instances = %+v, want the node group", ins)
			}
		})
	}
}
