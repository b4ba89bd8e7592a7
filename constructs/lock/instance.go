package lock

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Reading an instance's network position: its primary network interface (SubnetId, or the
// NetworkInterfaces entry with DeviceIndex 0, where CDK puts the subnet when
// AssociatePublicIpAddress is set), and whether it will have a public IPv4.

// nicInfo is what a lock needs of an instance's primary network interface.
type nicInfo struct {
	// subnetID is the subnet id (a token, or a literal for imported subnets); "" when unknown:
	// no subnet at all (the default VPC) or an existing network interface.
	subnetID string
	// publicIPv4 is AssociatePublicIpAddress when it is a literal; nil: the subnet decides.
	publicIPv4 *bool
	// existing is true when the interface is an existing one (NetworkInterfaceId).
	existing bool
	// ipv6Count is the interface's Ipv6AddressCount (0 when unset).
	ipv6Count float64
	// ipv6Addresses are the interface's Ipv6Addresses, resolved, or nil.
	ipv6Addresses any
}

// errUnreadable marks an instance whose network interfaces the lock cannot read.
var errUnreadable = errors.New("cannot read the instance's network interfaces")

// fixUnreadable says what to do about an instance whose network position cannot be read.
const fixUnreadable = "give the instance a literal NetworkInterfaces list whose primary interface has DeviceIndex \"0\" and a SubnetId, " +
	"or lock its role with lock.New (explicit addresses and VPC ids)"

// primaryInterface reads the primary network interface of cfn.
func primaryInterface(stack awscdk.Stack, cfn awsec2.CfnInstance) (nicInfo, error) {
	raw := cfn.NetworkInterfaces()
	subnet := cfn.SubnetId()
	if raw == nil {
		if subnet == nil {
			return nicInfo{}, nil // launched into the default VPC's default subnet
		}
		return nicInfo{subnetID: *subnet}, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nicInfo{}, fmt.Errorf("%w: its NetworkInterfaces is %s, not a list of interfaces; %s", errUnreadable, describe(raw), fixUnreadable)
	}
	if subnet != nil {
		return nicInfo{}, fmt.Errorf("%w: it has both SubnetId and NetworkInterfaces (CloudFormation takes one); %s", errUnreadable, fixUnreadable)
	}
	var primary *nicInfo
	for i, e := range list {
		n, index, err := readInterface(stack, e)
		if err != nil {
			return nicInfo{}, fmt.Errorf("%w: NetworkInterfaces[%d] %w; %s", errUnreadable, i, err, fixUnreadable)
		}
		if index != "0" {
			continue
		}
		if primary != nil {
			return nicInfo{}, fmt.Errorf("%w: two of its NetworkInterfaces have DeviceIndex 0; %s", errUnreadable, fixUnreadable)
		}
		primary = &n
	}
	if primary == nil {
		return nicInfo{}, fmt.Errorf("%w: none of its NetworkInterfaces is the primary interface (DeviceIndex 0); %s", errUnreadable, fixUnreadable)
	}
	return *primary, nil
}

// readInterface reads one NetworkInterfaces entry, as jsii returns it (a struct pointer) or as
// a user may have written it (a map), and returns its DeviceIndex.
func readInterface(stack awscdk.Stack, e any) (nicInfo, string, error) {
	var n nicInfo
	var index, subnet, eni any
	var assoc, count, ipv6 any
	switch v := e.(type) {
	case *awsec2.CfnInstance_NetworkInterfaceProperty:
		if v == nil {
			return n, "", fmt.Errorf("is empty")
		}
		index, subnet, eni = v.DeviceIndex, v.SubnetId, v.NetworkInterfaceId
		assoc, count, ipv6 = v.AssociatePublicIpAddress, v.Ipv6AddressCount, v.Ipv6Addresses
	case map[string]any:
		get := func(camel string) any {
			if x, ok := v[camel]; ok {
				return x
			}
			return v[string(camel[0]-'a'+'A')+camel[1:]] // the CloudFormation spelling
		}
		index, subnet, eni = get("deviceIndex"), get("subnetId"), get("networkInterfaceId")
		assoc, count, ipv6 = get("associatePublicIpAddress"), get("ipv6AddressCount"), get("ipv6Addresses")
	default:
		return n, "", fmt.Errorf("is %s, not a network interface", describe(e))
	}
	idx, ok := literalString(index)
	if !ok {
		return n, "", fmt.Errorf("has a DeviceIndex that is not a literal (%s)", describe(index))
	}
	// A token string is the subnet's id token, which the subnet index knows.
	n.subnetID, _ = literalString(subnet)
	if id, _ := literalString(eni); id != "" {
		n.existing = true
	}
	switch a := assoc.(type) {
	case bool:
		n.publicIPv4 = &a
	case *bool:
		n.publicIPv4 = a
	}
	switch c := count.(type) {
	case float64:
		n.ipv6Count = c
	case *float64:
		if c != nil {
			n.ipv6Count = *c
		}
	}
	if ipv6 != nil {
		n.ipv6Addresses = stack.Resolve(ipv6)
	}
	return n, idx, nil
}

// literalString returns v as a string and whether it is a literal (not a token). A token
// string is returned too, with false.
func literalString(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case *string:
		if x == nil {
			return "", true
		}
		s = *x
	case float64:
		return fmt.Sprint(x), true
	case nil:
		return "", true
	default:
		return "", false
	}
	return s, !IsToken(s)
}

// describe names what a value is, for messages: "a token", "a map", "a string".
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		if IsToken(x) {
			return "a token"
		}
		return fmt.Sprintf("the string %q", x)
	case *string:
		if x != nil && IsToken(*x) {
			return "a token"
		}
	case awscdk.IResolvable:
		return "a token"
	}
	return fmt.Sprintf("a %T", v)
}

// checkPublicIPv4 fails when an instance, placed as nic and place say, will have no public IPv4
// to lock to in InstancePublicIP mode (CloudFormation would fail at deploy: "Attribute PublicIp
// was not found"), with the modes that fit. Unknown placements pass: the instance may have one.
func checkPublicIPv4(path string, nic nicInfo, place *placement) error {
	if place != nil && place.kind != subnetPublic {
		return privateSubnetError(path, place)
	}
	if nic.publicIPv4 != nil {
		if *nic.publicIPv4 {
			return nil
		}
		return publicSubnetError(path, "its AssociatePublicIpAddress is false")
	}
	if nic.existing || place == nil {
		return nil
	}
	if maps, known := mapsPublicIPv4(place); known && !maps {
		return publicSubnetError(path, "its subnet maps none on launch: MapPublicIpOnLaunch is not true, CDK's default in dual-stack VPCs")
	}
	return nil
}

// mapsPublicIPv4 reports whether a subnet of the app gives every instance a public IPv4 at
// launch, and whether that is known (not for imported subnets, nor for a token).
func mapsPublicIPv4(place *placement) (maps, known bool) {
	if !place.owned() {
		return false, false
	}
	cfn, ok := place.subnet.Node().DefaultChild().(awsec2.CfnSubnet)
	if !ok || cfn == nil {
		return false, false
	}
	switch v := cfn.MapPublicIpOnLaunch().(type) {
	case nil:
		return false, true // unset: EC2's default for a subnet that is not a default subnet
	case bool:
		return v, true
	case *bool:
		return v != nil && *v, true
	}
	return false, false
}

// modeHint is how to pick another mode, for messages.
const modeHint = "(lock.Everything(scope, &lock.Options{Mode: ...}))"

// privateSubnetError is the error for an instance of a private or isolated subnet in a mode
// that needs its own public address, with the modes that fit where it is.
func privateSubnetError(path string, place *placement) error {
	if place.kind == subnetIsolated {
		return fmt.Errorf("defenders lock: %s is in an isolated subnet and has no public IP to lock to (nor any route out of its VPC); "+
			"use lock mode %s %s", path, VPCEndpointsOnly, modeHint)
	}
	switch {
	case !place.owned():
		return fmt.Errorf("defenders lock: %s is in a private subnet and has no public IP to lock to; use lock mode %s if the subnet routes "+
			"through NAT gateways (the VPC is imported: give their addresses in Options.NATIPs) or %s %s",
			path, NATEgress, VPCEndpointsOnly, modeHint)
	case routesToNAT(place.subnet):
		return fmt.Errorf("defenders lock: %s is in a private subnet and has no public IP to lock to (its calls leave through the subnet's NAT gateway); "+
			"use lock mode %s (the NAT gateway's address) or %s %s", path, NATEgress, VPCEndpointsOnly, modeHint)
	}
	return fmt.Errorf("defenders lock: %s is in a private subnet and has no public IP to lock to, and the subnet has no route to a NAT gateway; "+
		"use lock mode %s %s, or %s once the subnet routes through a NAT gateway", path, VPCEndpointsOnly, modeHint, NATEgress)
}

// publicSubnetError is the error for an instance of a public subnet that gets no public IPv4,
// in a mode that needs one; why says why it gets none.
func publicSubnetError(path, why string) error {
	return fmt.Errorf("defenders lock: %s gets no public IPv4 (%s), so there is no public IP to lock to and CloudFormation would fail "+
		"at deploy (\"Attribute PublicIp was not found\"); use lock mode %s (an Elastic IP gives it a fixed public address) or %s %s, "+
		"or give it a public IPv4 (AssociatePublicIpAddress: true)", path, why, ElasticIP, VPCEndpointsOnly, modeHint)
}

// routesToNAT reports whether a subnet of the app has a default IPv4 route to a NAT gateway
// (or a NAT instance).
func routesToNAT(s awsec2.ISubnet) bool {
	for _, c := range *s.Node().Children() {
		r, ok := c.(awsec2.CfnRoute)
		if !ok || r == nil {
			continue
		}
		if d := r.DestinationCidrBlock(); d != nil && *d == "0.0.0.0/0" && (r.NatGatewayId() != nil || r.InstanceId() != nil) {
			return true
		}
	}
	return false
}

// annotateError records err as an error annotation on c: `cdk synth` fails and prints it with
// c's path.
func annotateError(c constructs.IConstruct, err error) {
	awscdk.Annotations_Of(c).AddError(jsii.String(err.Error()))
}
