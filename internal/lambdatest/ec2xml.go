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

// HandleDescribeInstances answers ec2:DescribeInstances over the wire
// (the handler of a Service speaking ProtocolEC2): it reads InstanceId.N,
// Filter.N.Name and Filter.N.Value.M, MaxResults and NextToken, lets
// DescribeInstances answer, and renders the answer or its error as EC2
// does.
func (f *EC2) HandleDescribeInstances(req *Request) (string, error) {
	in := &ec2.DescribeInstancesInput{InstanceIds: req.List("InstanceId")}
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		if !req.Form.Has(p + ".Name") {
			break
		}
		in.Filters = append(in.Filters, ec2types.Filter{Name: aws.String(req.Get(p + ".Name")), Values: req.List(p + ".Value")})
	}
	if s := req.Get("MaxResults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return "", Errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value %q for MaxResults", s)
		}
		in.MaxResults = aws.Int32(int32(n))
	}
	if tok := req.Get("NextToken"); tok != "" {
		in.NextToken = aws.String(tok)
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
			tag(&b, "vpcId", ni.VpcId)
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
