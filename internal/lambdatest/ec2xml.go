package lambdatest

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// filters reads Filter.N.Name and Filter.N.Value.M.
func filters(req *Request) []ec2types.Filter {
	var out []ec2types.Filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		if !req.Form.Has(p + ".Name") {
			return out
		}
		out = append(out, ec2types.Filter{Name: aws.String(req.Get(p + ".Name")), Values: req.List(p + ".Value")})
	}
}

// paging reads MaxResults and NextToken.
func paging(req *Request) (maxResults *int32, token *string, err error) {
	if s := req.Get("MaxResults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, nil, Errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value %q for MaxResults", s)
		}
		maxResults = aws.Int32(int32(n))
	}
	if tok := req.Get("NextToken"); tok != "" {
		token = aws.String(tok)
	}
	return maxResults, token, nil
}

// HandleDescribeInstances answers ec2:DescribeInstances over the wire
// (the handler of a Service speaking ProtocolEC2): it reads InstanceId.N,
// Filter.N.Name and Filter.N.Value.M, MaxResults and NextToken, lets
// DescribeInstances answer, and renders the answer or its error as EC2
// does.
func (f *EC2) HandleDescribeInstances(req *Request) (string, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: req.List("InstanceId"), Filters: filters(req)}
	var err error
	if in.MaxResults, in.NextToken, err = paging(req); err != nil {
		return "", err
	}
	out, err := f.DescribeInstances(context.Background(), in)
	if err != nil {
		return "", asAPIError(err)
	}
	var b strings.Builder
	b.WriteString("<reservationSet>")
	for _, r := range out.Reservations {
		fmt.Fprintf(&b, "<item><reservationId>%s</reservationId><ownerId>%s</ownerId><instancesSet>",
			XMLText(aws.ToString(r.ReservationId)), XMLText(aws.ToString(r.OwnerId)))
		for _, inst := range r.Instances {
			b.WriteString(instanceXML(inst))
		}
		b.WriteString("</instancesSet></item>")
	}
	b.WriteString("</reservationSet>")
	if out.NextToken != nil {
		fmt.Fprintf(&b, "<nextToken>%s</nextToken>", XMLText(*out.NextToken))
	}
	return b.String(), nil
}

// HandleDescribeRouteTables answers ec2:DescribeRouteTables over the wire:
// RouteTableId.N, Filter.N, MaxResults and NextToken.
func (f *EC2) HandleDescribeRouteTables(req *Request) (string, error) {
	in := &ec2.DescribeRouteTablesInput{RouteTableIds: req.List("RouteTableId"), Filters: filters(req)}
	var err error
	if in.MaxResults, in.NextToken, err = paging(req); err != nil {
		return "", err
	}
	out, err := f.DescribeRouteTables(context.Background(), in)
	if err != nil {
		return "", asAPIError(err)
	}
	var b strings.Builder
	b.WriteString("<routeTableSet>")
	for _, t := range out.RouteTables {
		b.WriteString("<item>")
		tag(&b, "routeTableId", t.RouteTableId)
		tag(&b, "vpcId", t.VpcId)
		tag(&b, "ownerId", t.OwnerId)
		b.WriteString("<routeSet>")
		for _, r := range t.Routes {
			b.WriteString("<item>")
			tag(&b, "destinationCidrBlock", r.DestinationCidrBlock)
			tag(&b, "destinationIpv6CidrBlock", r.DestinationIpv6CidrBlock)
			tag(&b, "gatewayId", r.GatewayId)
			tag(&b, "natGatewayId", r.NatGatewayId)
			tag(&b, "egressOnlyInternetGatewayId", r.EgressOnlyInternetGatewayId)
			tag(&b, "transitGatewayId", r.TransitGatewayId)
			if r.State != "" {
				fmt.Fprintf(&b, "<state>%s</state>", XMLText(string(r.State)))
			}
			if r.Origin != "" {
				fmt.Fprintf(&b, "<origin>%s</origin>", XMLText(string(r.Origin)))
			}
			b.WriteString("</item>")
		}
		b.WriteString("</routeSet><associationSet>")
		for _, a := range t.Associations {
			b.WriteString("<item>")
			tag(&b, "routeTableAssociationId", a.RouteTableAssociationId)
			tag(&b, "routeTableId", a.RouteTableId)
			tag(&b, "subnetId", a.SubnetId)
			tag(&b, "gatewayId", a.GatewayId)
			fmt.Fprintf(&b, "<main>%t</main>", aws.ToBool(a.Main))
			if a.AssociationState != nil {
				fmt.Fprintf(&b, "<associationState><state>%s</state></associationState>", XMLText(string(a.AssociationState.State)))
			}
			b.WriteString("</item>")
		}
		b.WriteString("</associationSet></item>")
	}
	b.WriteString("</routeTableSet>")
	if out.NextToken != nil {
		fmt.Fprintf(&b, "<nextToken>%s</nextToken>", XMLText(*out.NextToken))
	}
	return b.String(), nil
}

// HandleDescribeNatGateways answers ec2:DescribeNatGateways over the wire:
// NatGatewayId.N, Filter.N, MaxResults and NextToken.
func (f *EC2) HandleDescribeNatGateways(req *Request) (string, error) {
	in := &ec2.DescribeNatGatewaysInput{NatGatewayIds: req.List("NatGatewayId"), Filter: filters(req)}
	var err error
	if in.MaxResults, in.NextToken, err = paging(req); err != nil {
		return "", err
	}
	out, err := f.DescribeNatGateways(context.Background(), in)
	if err != nil {
		return "", asAPIError(err)
	}
	var b strings.Builder
	b.WriteString("<natGatewaySet>")
	for _, n := range out.NatGateways {
		b.WriteString("<item>")
		tag(&b, "natGatewayId", n.NatGatewayId)
		tag(&b, "vpcId", n.VpcId)
		tag(&b, "subnetId", n.SubnetId)
		if n.State != "" {
			fmt.Fprintf(&b, "<state>%s</state>", XMLText(string(n.State)))
		}
		if n.ConnectivityType != "" {
			fmt.Fprintf(&b, "<connectivityType>%s</connectivityType>", XMLText(string(n.ConnectivityType)))
		}
		b.WriteString("<natGatewayAddressSet>")
		for _, a := range n.NatGatewayAddresses {
			b.WriteString("<item>")
			tag(&b, "allocationId", a.AllocationId)
			tag(&b, "networkInterfaceId", a.NetworkInterfaceId)
			tag(&b, "privateIp", a.PrivateIp)
			tag(&b, "publicIp", a.PublicIp)
			if a.Status != "" {
				fmt.Fprintf(&b, "<status>%s</status>", XMLText(string(a.Status)))
			}
			b.WriteString("</item>")
		}
		b.WriteString("</natGatewayAddressSet></item>")
	}
	b.WriteString("</natGatewaySet>")
	if out.NextToken != nil {
		fmt.Fprintf(&b, "<nextToken>%s</nextToken>", XMLText(*out.NextToken))
	}
	return b.String(), nil
}

// HandleDescribeAddresses answers ec2:DescribeAddresses over the wire:
// AllocationId.N, PublicIp.N and Filter.N.
func (f *EC2) HandleDescribeAddresses(req *Request) (string, error) {
	in := &ec2.DescribeAddressesInput{AllocationIds: req.List("AllocationId"), PublicIps: req.List("PublicIp"), Filters: filters(req)}
	out, err := f.DescribeAddresses(context.Background(), in)
	if err != nil {
		return "", asAPIError(err)
	}
	var b strings.Builder
	b.WriteString("<addressesSet>")
	for _, a := range out.Addresses {
		b.WriteString("<item>")
		tag(&b, "publicIp", a.PublicIp)
		tag(&b, "allocationId", a.AllocationId)
		tag(&b, "associationId", a.AssociationId)
		if a.Domain != "" {
			fmt.Fprintf(&b, "<domain>%s</domain>", XMLText(string(a.Domain)))
		}
		tag(&b, "instanceId", a.InstanceId)
		tag(&b, "networkInterfaceId", a.NetworkInterfaceId)
		tag(&b, "privateIpAddress", a.PrivateIpAddress)
		b.WriteString("</item>")
	}
	b.WriteString("</addressesSet>")
	return b.String(), nil
}

// instanceXML renders an instance of EC2 as DescribeInstances answers it
// (an <item> of instancesSet): the fields the fake sets, with their
// addresses on every network interface.
func instanceXML(in ec2types.Instance) string {
	var b strings.Builder
	b.WriteString("<item>")
	tag(&b, "instanceId", in.InstanceId)
	tag(&b, "imageId", in.ImageId)
	if in.State != nil {
		fmt.Fprintf(&b, "<instanceState><code>%d</code><name>%s</name></instanceState>", aws.ToInt32(in.State.Code), XMLText(string(in.State.Name)))
	}
	if in.InstanceType != "" {
		fmt.Fprintf(&b, "<instanceType>%s</instanceType>", XMLText(string(in.InstanceType)))
	}
	if in.LaunchTime != nil {
		fmt.Fprintf(&b, "<launchTime>%s</launchTime>", in.LaunchTime.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	tag(&b, "privateIpAddress", in.PrivateIpAddress)
	tag(&b, "ipAddress", in.PublicIpAddress)
	tag(&b, "ipv6Address", in.Ipv6Address)
	tag(&b, "vpcId", in.VpcId)
	tag(&b, "subnetId", in.SubnetId)
	if p := in.IamInstanceProfile; p != nil {
		b.WriteString("<iamInstanceProfile>")
		tag(&b, "arn", p.Arn)
		tag(&b, "id", p.Id)
		b.WriteString("</iamInstanceProfile>")
	}
	if len(in.NetworkInterfaces) > 0 {
		b.WriteString("<networkInterfaceSet>")
		for _, ni := range in.NetworkInterfaces {
			b.WriteString("<item>")
			tag(&b, "networkInterfaceId", ni.NetworkInterfaceId)
			tag(&b, "subnetId", ni.SubnetId)
			tag(&b, "vpcId", ni.VpcId)
			if a := ni.Attachment; a != nil {
				b.WriteString("<attachment>")
				tag(&b, "attachmentId", a.AttachmentId)
				if a.DeviceIndex != nil {
					fmt.Fprintf(&b, "<deviceIndex>%d</deviceIndex>", *a.DeviceIndex)
				}
				b.WriteString("</attachment>")
			}
			if ni.Status != "" {
				fmt.Fprintf(&b, "<status>%s</status>", XMLText(string(ni.Status)))
			}
			associationXML(&b, ni.Association)
			tag(&b, "privateIpAddress", ni.PrivateIpAddress)
			if len(ni.PrivateIpAddresses) > 0 {
				b.WriteString("<privateIpAddressesSet>")
				for _, a := range ni.PrivateIpAddresses {
					b.WriteString("<item>")
					tag(&b, "privateIpAddress", a.PrivateIpAddress)
					if a.Primary != nil {
						fmt.Fprintf(&b, "<primary>%t</primary>", *a.Primary)
					}
					associationXML(&b, a.Association)
					b.WriteString("</item>")
				}
				b.WriteString("</privateIpAddressesSet>")
			}
			if len(ni.Ipv6Addresses) > 0 {
				b.WriteString("<ipv6AddressesSet>")
				for _, a := range ni.Ipv6Addresses {
					b.WriteString("<item>")
					tag(&b, "ipv6Address", a.Ipv6Address)
					b.WriteString("</item>")
				}
				b.WriteString("</ipv6AddressesSet>")
			}
			if len(ni.Ipv4Prefixes) > 0 {
				b.WriteString("<ipv4PrefixSet>")
				for _, p := range ni.Ipv4Prefixes {
					b.WriteString("<item>")
					tag(&b, "ipv4Prefix", p.Ipv4Prefix)
					b.WriteString("</item>")
				}
				b.WriteString("</ipv4PrefixSet>")
			}
			if len(ni.Ipv6Prefixes) > 0 {
				b.WriteString("<ipv6PrefixSet>")
				for _, p := range ni.Ipv6Prefixes {
					b.WriteString("<item>")
					tag(&b, "ipv6Prefix", p.Ipv6Prefix)
					b.WriteString("</item>")
				}
				b.WriteString("</ipv6PrefixSet>")
			}
			b.WriteString("</item>")
		}
		b.WriteString("</networkInterfaceSet>")
	}
	b.WriteString("</item>")
	return b.String()
}

// associationXML renders a network interface association.
func associationXML(b *strings.Builder, a *ec2types.InstanceNetworkInterfaceAssociation) {
	if a == nil {
		return
	}
	b.WriteString("<association>")
	tag(b, "publicIp", a.PublicIp)
	tag(b, "ipOwnerId", a.IpOwnerId)
	tag(b, "carrierIp", a.CarrierIp)
	tag(b, "customerOwnedIp", a.CustomerOwnedIp)
	b.WriteString("</association>")
}

// tag renders <name>v</name> when v is set.
func tag(b *strings.Builder, name string, v *string) {
	if v != nil {
		fmt.Fprintf(b, "<%s>%s</%s>", name, XMLText(*v), name)
	}
}
