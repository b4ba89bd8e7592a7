package locker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// ec2FilterChunk bounds the values of one EC2 filter (EC2 accepts 200).
const ec2FilterChunk = 200

// defaultRoute is the IPv4 destination of a subnet's route to the internet.
const defaultRoute = "0.0.0.0/0"

// natEgress fills in Instance.Egress for the live instances: the public
// addresses of the NAT gateway that the 0.0.0.0/0 route of the instance's
// route table (its subnet's explicit association, else its VPC's main
// route table) points to. Blackhole routes and NAT gateways that are
// neither pending nor available count for nothing; so do private NAT
// gateways, which have no public address. It returns a note for every live
// instance without such a NAT gateway. Route tables and NAT gateways are
// asked about once per invocation (see run.routes and run.nats).
func (r *run) natEgress(ctx context.Context, instances []Instance) ([]string, error) {
	var vpcs []string
	for _, i := range instances {
		if i.Live() && i.VPC != "" && i.Subnet != "" {
			vpcs = append(vpcs, i.VPC)
		}
	}
	if err := r.routeTables(ctx, vpcs); err != nil {
		return nil, err
	}
	natOf := map[string]string{}
	var natIDs []string
	var notes []string
	for _, i := range instances {
		if !i.Live() {
			continue
		}
		id := natOnRoute(r.routes[i.VPC], i.Subnet)
		if id == "" {
			notes = append(notes, fmt.Sprintf("instance %s: no NAT gateway on the route of subnet %q to the internet (0.0.0.0/0)", i.ID, i.Subnet))
			continue
		}
		natOf[i.ID] = id
		natIDs = append(natIDs, id)
	}
	if err := r.natAddresses(ctx, natIDs); err != nil {
		return nil, err
	}
	for k := range instances {
		id, ok := natOf[instances[k].ID]
		if !ok {
			continue
		}
		instances[k].Egress = r.nats[id]
		if len(instances[k].Egress) == 0 {
			notes = append(notes, fmt.Sprintf("instance %s: NAT gateway %s has no public address (private, deleted or failed)", instances[k].ID, id))
		}
	}
	return notes, nil
}

// natOnRoute returns the NAT gateway of the 0.0.0.0/0 route of the route
// table a subnet uses: the one explicitly associated with it, else the
// main route table of the VPC. "" when there is none.
func natOnRoute(tables []ec2types.RouteTable, subnet string) string {
	associated := func(a ec2types.RouteTableAssociation) bool {
		if a.AssociationState == nil {
			return true
		}
		switch a.AssociationState.State {
		case ec2types.RouteTableAssociationStateCodeDisassociated, ec2types.RouteTableAssociationStateCodeFailed:
			return false
		}
		return true
	}
	pick := func(match func(ec2types.RouteTableAssociation) bool) *ec2types.RouteTable {
		for k := range tables {
			for _, a := range tables[k].Associations {
				if associated(a) && match(a) {
					return &tables[k]
				}
			}
		}
		return nil
	}
	table := pick(func(a ec2types.RouteTableAssociation) bool { return subnet != "" && deref(a.SubnetId) == subnet })
	if table == nil {
		table = pick(func(a ec2types.RouteTableAssociation) bool { return aws.ToBool(a.Main) })
	}
	if table == nil {
		return ""
	}
	for _, rt := range table.Routes {
		if deref(rt.DestinationCidrBlock) == defaultRoute && deref(rt.NatGatewayId) != "" && rt.State != ec2types.RouteStateBlackhole {
			return deref(rt.NatGatewayId)
		}
	}
	return ""
}

// routeTables asks EC2 for the route tables of the VPCs not asked about yet
// in this invocation (filter vpc-id, every page).
func (r *run) routeTables(ctx context.Context, vpcs []string) error {
	var missing []string
	for _, v := range vpcs {
		if _, ok := r.routes[v]; !ok && !slices.Contains(missing, v) {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	for chunk := range slices.Chunk(missing, ec2FilterChunk) {
		for _, v := range chunk {
			r.routes[v] = []ec2types.RouteTable{}
		}
		var token *string
		for {
			var out *ec2.DescribeRouteTablesOutput
			err := r.call(ctx, "ec2:DescribeRouteTables", false, func(ctx context.Context) (err error) {
				out, err = r.l.cfg.EC2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{
					Filters:    []ec2types.Filter{{Name: aws.String("vpc-id"), Values: chunk}},
					MaxResults: aws.Int32(100), NextToken: token,
				})
				return err
			})
			if err != nil {
				for _, v := range chunk {
					delete(r.routes, v) // not known: ask again next time
				}
				return fmt.Errorf("locker: describe route tables of %d VPCs (%s...): %w", len(chunk), chunk[0], err)
			}
			for _, t := range out.RouteTables {
				v := deref(t.VpcId)
				if _, ok := r.routes[v]; ok {
					r.routes[v] = append(r.routes[v], t)
				}
			}
			if deref(out.NextToken) == "" {
				break
			}
			token = out.NextToken
		}
	}
	return nil
}

// natAddresses asks EC2 for the public addresses of the NAT gateways not
// asked about yet in this invocation (filter nat-gateway-id, which, unlike
// NatGatewayIds, does not fail for a gateway deleted long ago).
func (r *run) natAddresses(ctx context.Context, ids []string) error {
	var missing []string
	for _, id := range ids {
		if _, ok := r.nats[id]; !ok && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	for chunk := range slices.Chunk(missing, ec2FilterChunk) {
		found := map[string][]netip.Prefix{}
		var token *string
		for {
			var out *ec2.DescribeNatGatewaysOutput
			err := r.call(ctx, "ec2:DescribeNatGateways", false, func(ctx context.Context) (err error) {
				out, err = r.l.cfg.EC2.DescribeNatGateways(ctx, &ec2.DescribeNatGatewaysInput{
					Filter:     []ec2types.Filter{{Name: aws.String("nat-gateway-id"), Values: chunk}},
					MaxResults: aws.Int32(1000), NextToken: token,
				})
				return err
			})
			if err != nil {
				return fmt.Errorf("locker: describe NAT gateways %v: %w", chunk, err)
			}
			for _, n := range out.NatGateways {
				if n.State != ec2types.NatGatewayStatePending && n.State != ec2types.NatGatewayStateAvailable {
					continue
				}
				for _, a := range n.NatGatewayAddresses {
					ip, err := netip.ParseAddr(deref(a.PublicIp))
					if err != nil || !lockpolicy.IsPublic(ip) {
						continue
					}
					id := deref(n.NatGatewayId)
					found[id] = append(found[id], netip.PrefixFrom(ip, ip.BitLen()))
				}
			}
			if deref(out.NextToken) == "" {
				break
			}
			token = out.NextToken
		}
		for _, id := range chunk {
			r.nats[id] = uniquePrefixes(found[id])
		}
	}
	return nil
}
