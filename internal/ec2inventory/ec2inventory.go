// Package ec2inventory is the detector's EC2 inventory: it implements
// detect.Inventory and detect.BulkInventory over the EC2 API.
//
// An instance is described with DescribeInstances and an "instance-id"
// filter, never with the InstanceIds parameter, although InstanceIds takes
// up to 1,000 ids a call and a filter up to 200 values (MaxFilterValues):
//
//   - InstanceIds fails the whole call when one id is unknown
//     (InvalidInstanceID.NotFound) or malformed
//     (InvalidInstanceID.Malformed), and unknown ids are the normal case
//     here: instances terminated since their credentials were used, every
//     region but the instance's in the cross-region search, and session
//     names made up to look like instance ids. Splitting the call to
//     isolate them costs up to about 2·k·log2(n/k) extra calls for k
//     unknown ids among n, calls that someone who can make up session
//     names controls; a filter leaves unknown ids out of the answer, which
//     is exactly "not found" for them, in one call per 200 ids.
//   - InstanceIds cannot be combined with MaxResults, so its answer cannot
//     be paged (EC2 documents unpaginated DescribeInstances requests as
//     prone to throttling and timeouts); a filter pages with MaxResults
//     like any other request.
//
// A batch rarely holds more than 200 unseen instances, so the larger
// InstanceIds limit would seldom save a call.
//
// From each instance it collects, with ec2addr.Of (the reading the locker
// uses for the lock), every address the instance may call AWS from or be
// seen with: the public IPv4 address of every network interface
// association, Elastic IPs included (an Elastic IP is an association), on
// the primary and the secondary private addresses; every IPv6 address and
// delegated IPv6 prefix; every private address; delegated IPv4 prefixes;
// and the VPC id. Carrier (Wavelength) and customer-owned (Outposts)
// addresses are not the instance's: its lock does not admit them. It also
// records the primary private IPv4 (PrivateIpAddress), the one address a
// lock admits through a VPC endpoint (aws:Ec2InstanceSourcePrivateIPv4),
// which the detector requires through the app's shared endpoints.
//
// The detector's rate limit on lookups of unseen instances
// (detect.CacheOptions) is charged per LookupMany, that is per
// DescribeInstances call of up to 200 ids; the VPC calls are cached per
// VPC and not charged (made-up instance ids have no VPC).
//
// What depends on the VPC rather than on the instance, the public addresses
// of the VPC's available NAT gateways (DescribeNatGateways) and the ids of
// its VPC endpoints (DescribeVpcEndpoints), is fetched with vpc-id filters
// for all the VPCs of a batch at once and cached per VPC with the same TTL
// as the instances (which detect.CachedInventory caches in front of this
// package).
//
// A terminated instance is reported as not found: it has no addresses any
// more, and detect reports such a record as InstanceMissing (MEDIUM)
// rather than BadSource (HIGH).
//
// An Inventory describes the region of its client. The detector builds one
// per region (detect.MultiRegionInventory asks the other regions for the
// instances its own region does not know), and EnabledRegions lists the
// regions to ask. In organisation mode it reads the member accounts too:
// MemberSessions holds their member role sessions and WithCredentials signs
// a region's shared client with one (see "Member accounts" in
// sessions.go). The cross-region search uses the same instance-id
// filter: InstanceIds would answer InvalidInstanceID.NotFound from every
// region but the instance's, which is the normal case there, and could not
// serve a whole batch's unknown ids with one call per region.
package ec2inventory

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/lockpolicy/ec2addr"
)

// API is the part of the EC2 client the inventory uses. *ec2.Client
// implements it.
type API interface {
	// DescribeInstances is ec2.Client.DescribeInstances.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	// DescribeNatGateways is ec2.Client.DescribeNatGateways.
	DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error)
	// DescribeVpcEndpoints is ec2.Client.DescribeVpcEndpoints.
	DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error)
}

// RegionsAPI is the part of the EC2 client that lists the regions.
// *ec2.Client implements it.
type RegionsAPI interface {
	// DescribeRegions is ec2.Client.DescribeRegions.
	DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
}

var (
	_ API        = (*ec2.Client)(nil)
	_ RegionsAPI = (*ec2.Client)(nil)
)

// Limits of one EC2 call.
const (
	// MaxFilterValues is the number of values EC2 accepts in one filter.
	MaxFilterValues = 200
	// MaxPages bounds the pages followed for one call, so that a service
	// that keeps returning a NextToken cannot loop forever.
	MaxPages = 100
)

// Defaults; see Options.
const (
	DefaultVPCTTL      = detect.DefaultCacheTTL
	DefaultMaxStale    = detect.DefaultMaxStale
	DefaultMaxVPCs     = 1000
	DefaultCallTimeout = 10 * time.Second
)

// Options configures an Inventory. Zero fields take the defaults.
type Options struct {
	// VPCTTL is how long a VPC's NAT gateways and endpoints are cached
	// (DefaultVPCTTL; the detector passes its inventory TTL).
	VPCTTL time.Duration
	// MaxStale is how old cached VPC data may be and still be used when
	// refreshing it fails (DefaultMaxStale).
	MaxStale time.Duration
	// MaxVPCs bounds the VPC cache (DefaultMaxVPCs).
	MaxVPCs int
	// CallTimeout bounds each EC2 call, retries included
	// (DefaultCallTimeout).
	CallTimeout time.Duration
	// Region is the region of the API client, recorded in every
	// detect.Instance the inventory returns ("" leaves it unset).
	Region string
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Stats counts the EC2 calls an Inventory made.
type Stats struct {
	DescribeInstances    int // DescribeInstances calls (pages)
	DescribeNatGateways  int // DescribeNatGateways calls (pages)
	DescribeVpcEndpoints int // DescribeVpcEndpoints calls (pages)
	VPCHits              int // VPCs answered from the cache
	VPCStaleServed       int // VPCs answered with expired data because EC2 failed
	Errors               int // failed EC2 calls
}

// Inventory looks instances up in EC2. It is safe for concurrent use. Wrap
// it in a detect.CachedInventory: it caches VPC data but not instances.
type Inventory struct {
	api API
	o   Options

	mu    sync.Mutex
	vpcs  map[string]*vpcEntry
	stats Stats
}

var (
	_ detect.Inventory     = (*Inventory)(nil)
	_ detect.BulkInventory = (*Inventory)(nil)
)

// vpcEntry is what the inventory knows about one VPC.
type vpcEntry struct {
	natIPs    []netip.Addr // public addresses of its available NAT gateways
	endpoints []string     // ids of its VPC endpoints
	fetched   time.Time
}

// New returns an Inventory over api.
func New(api API, o Options) *Inventory {
	if o.VPCTTL <= 0 {
		o.VPCTTL = DefaultVPCTTL
	}
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	o.MaxStale = max(o.MaxStale, o.VPCTTL)
	if o.MaxVPCs <= 0 {
		o.MaxVPCs = DefaultMaxVPCs
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Inventory{api: api, o: o, vpcs: make(map[string]*vpcEntry)}
}

// Stats returns a snapshot of the counters.
func (inv *Inventory) Stats() Stats {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.stats
}

// Lookup describes one instance. found is false, with a nil error, when EC2
// does not know the instance or it is terminated.
func (inv *Inventory) Lookup(ctx context.Context, instanceID string) (detect.Instance, bool, error) {
	m, err := inv.LookupMany(ctx, []string{instanceID})
	if err != nil {
		return detect.Instance{}, false, err
	}
	in, ok := m[instanceID]
	return in, ok, nil
}

// LookupMany describes instances with as few calls as possible: one
// DescribeInstances per MaxFilterValues ids, then one DescribeNatGateways
// and one DescribeVpcEndpoints for all the VPCs not in the VPC cache. Ids
// absent from the map are unknown (or terminated). An error means nothing
// could be decided: no partial answer is returned, since an instance
// without its VPC's NAT addresses would raise false alarms.
func (inv *Inventory) LookupMany(ctx context.Context, instanceIDs []string) (map[string]detect.Instance, error) {
	out := make(map[string]detect.Instance, len(instanceIDs))
	ids := uniq(instanceIDs)
	for chunk := range slices.Chunk(ids, MaxFilterValues) {
		if err := inv.describeInstances(ctx, chunk, out); err != nil {
			return nil, err
		}
	}
	var vpcIDs []string
	for _, in := range out {
		if in.VpcID != "" {
			vpcIDs = append(vpcIDs, in.VpcID)
		}
	}
	vpcs, err := inv.vpcInfo(ctx, uniq(vpcIDs))
	if err != nil {
		return nil, err
	}
	for id, in := range out {
		if e := vpcs[in.VpcID]; e != nil {
			in.NATIPs, in.VPCEndpointIDs = e.natIPs, e.endpoints
			out[id] = in
		}
	}
	return out, nil
}

// describeInstances adds the instances among ids (at most MaxFilterValues)
// to out.
func (inv *Inventory) describeInstances(ctx context.Context, ids []string, out map[string]detect.Instance) error {
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	in := &ec2.DescribeInstancesInput{
		Filters:    []types.Filter{{Name: aws.String("instance-id"), Values: ids}},
		MaxResults: aws.Int32(1000),
	}
	for page := 0; ; page++ {
		if page == MaxPages {
			return fmt.Errorf("ec2inventory: DescribeInstances: more than %d pages", MaxPages)
		}
		res, err := call(ctx, inv, &inv.stats.DescribeInstances, func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
			return inv.api.DescribeInstances(ctx, in)
		})
		if err != nil {
			return fmt.Errorf("ec2inventory: DescribeInstances of %d instances (%s...): %w", len(ids), ids[0], err)
		}
		for _, r := range res.Reservations {
			for i := range r.Instances {
				inst := &r.Instances[i]
				id := aws.ToString(inst.InstanceId)
				if !asked[id] {
					continue // not asked for: never trust a filter blindly
				}
				if inst.State != nil && inst.State.Name == types.InstanceStateNameTerminated {
					continue
				}
				in := convert(inst)
				in.Region = inv.o.Region
				out[id] = in
			}
		}
		if aws.ToString(res.NextToken) == "" {
			return nil
		}
		in.NextToken = res.NextToken
	}
}

// errNoOutput reports a call that returned neither an output nor an error.
var errNoOutput = errors.New("no output")

// call runs one EC2 call with the call timeout, counting it and its
// failure. A nil output without an error is an error.
func call[T any](ctx context.Context, inv *Inventory, counter *int, f func(context.Context) (*T, error)) (*T, error) {
	ctx, cancel := context.WithTimeout(ctx, inv.o.CallTimeout)
	defer cancel()
	inv.mu.Lock()
	*counter++
	inv.mu.Unlock()
	res, err := f(ctx)
	if err == nil && res == nil {
		err = errNoOutput
	}
	if err != nil {
		inv.mu.Lock()
		inv.stats.Errors++
		inv.mu.Unlock()
		return nil, err
	}
	return res, nil
}

// convert extracts the addresses of an instance with ec2addr.Of, the
// reading the locker uses for the instance role's lock, so that the
// detector accepts a call from exactly the public addresses a lock admits.
func convert(inst *types.Instance) detect.Instance {
	a := ec2addr.Of(*inst)
	out := detect.Instance{
		ID:              aws.ToString(inst.InstanceId),
		VpcID:           a.VPC,
		PublicIPs:       a.Public,
		PublicPrefixes:  a.PublicPrefixes,
		PrivateIPs:      a.Private,
		PrivatePrefixes: a.DelegatedPrefixes,
	}
	// PrivateIpAddress is the primary private IPv4 of the primary network
	// interface: what aws:Ec2InstanceSourcePrivateIPv4 carries, and so the
	// only address a lock admits through a VPC endpoint.
	if ip, ok := parse(inst.PrivateIpAddress); ok && ip.Is4() {
		out.PrimaryPrivateIP = ip
	}
	return out
}

// parse parses an address; ok is false for a missing or invalid one.
func parse(s *string) (netip.Addr, bool) {
	if s == nil || *s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(*s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// vpcInfo returns the VPC data of vpcIDs, from the cache when fresh and
// from EC2 otherwise. When EC2 fails, entries younger than MaxStale are
// used; if any VPC has none, the error is returned.
func (inv *Inventory) vpcInfo(ctx context.Context, vpcIDs []string) (map[string]*vpcEntry, error) {
	out := make(map[string]*vpcEntry, len(vpcIDs))
	var missing []string
	now := inv.o.Now()
	inv.mu.Lock()
	for _, id := range vpcIDs {
		if e, ok := inv.vpcs[id]; ok && now.Sub(e.fetched) < inv.o.VPCTTL {
			out[id] = e
			inv.stats.VPCHits++
			continue
		}
		missing = append(missing, id)
	}
	inv.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	fresh, err := inv.describeVPCs(ctx, missing)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err != nil {
		for _, id := range missing {
			e, ok := inv.vpcs[id]
			if !ok || now.Sub(e.fetched) > inv.o.MaxStale {
				return nil, err
			}
			out[id] = e
		}
		inv.stats.VPCStaleServed += len(missing)
		return out, nil
	}
	fetched := inv.o.Now()
	for _, id := range missing {
		e := fresh[id]
		e.fetched = fetched
		inv.vpcs[id] = e
		out[id] = e
	}
	inv.evict(fetched)
	return out, nil
}

// evict keeps the VPC cache within MaxVPCs: expired entries go first, then
// the oldest. Called with inv.mu held.
func (inv *Inventory) evict(now time.Time) {
	if len(inv.vpcs) <= inv.o.MaxVPCs {
		return
	}
	for id, e := range inv.vpcs {
		if now.Sub(e.fetched) > inv.o.MaxStale {
			delete(inv.vpcs, id)
		}
	}
	for len(inv.vpcs) > inv.o.MaxVPCs {
		var oldest string
		var t time.Time
		for id, e := range inv.vpcs {
			if oldest == "" || e.fetched.Before(t) {
				oldest, t = id, e.fetched
			}
		}
		delete(inv.vpcs, oldest)
	}
}

// describeVPCs fetches the NAT gateways and endpoints of vpcIDs. Every VPC
// gets an entry, empty when it has neither.
func (inv *Inventory) describeVPCs(ctx context.Context, vpcIDs []string) (map[string]*vpcEntry, error) {
	out := make(map[string]*vpcEntry, len(vpcIDs))
	for _, id := range vpcIDs {
		out[id] = &vpcEntry{}
	}
	for chunk := range slices.Chunk(vpcIDs, MaxFilterValues) {
		if err := inv.describeNATs(ctx, chunk, out); err != nil {
			return nil, err
		}
		if err := inv.describeEndpoints(ctx, chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (inv *Inventory) describeNATs(ctx context.Context, vpcIDs []string, out map[string]*vpcEntry) error {
	in := &ec2.DescribeNatGatewaysInput{
		Filter: []types.Filter{
			{Name: aws.String("vpc-id"), Values: vpcIDs},
			{Name: aws.String("state"), Values: []string{string(types.NatGatewayStateAvailable)}},
		},
		MaxResults: aws.Int32(1000),
	}
	for page := 0; ; page++ {
		if page == MaxPages {
			return fmt.Errorf("ec2inventory: DescribeNatGateways: more than %d pages", MaxPages)
		}
		res, err := call(ctx, inv, &inv.stats.DescribeNatGateways, func(ctx context.Context) (*ec2.DescribeNatGatewaysOutput, error) {
			return inv.api.DescribeNatGateways(ctx, in)
		})
		if err != nil {
			return fmt.Errorf("ec2inventory: DescribeNatGateways of %d VPCs (%s...): %w", len(vpcIDs), vpcIDs[0], err)
		}
		for _, ng := range res.NatGateways {
			e := out[aws.ToString(ng.VpcId)]
			if e == nil || ng.State != types.NatGatewayStateAvailable {
				continue
			}
			for _, ad := range ng.NatGatewayAddresses {
				if a, ok := parse(ad.PublicIp); ok && !slices.Contains(e.natIPs, a) {
					e.natIPs = append(e.natIPs, a)
				}
			}
		}
		if aws.ToString(res.NextToken) == "" {
			return nil
		}
		in.NextToken = res.NextToken
	}
}

// describeEndpoints collects the endpoints of vpcIDs in every state: an
// endpoint id is globally unique and pins a call to the VPC it belongs to,
// and CloudTrail's delay can deliver calls made through an endpoint that
// has since been deleted.
func (inv *Inventory) describeEndpoints(ctx context.Context, vpcIDs []string, out map[string]*vpcEntry) error {
	in := &ec2.DescribeVpcEndpointsInput{
		Filters:    []types.Filter{{Name: aws.String("vpc-id"), Values: vpcIDs}},
		MaxResults: aws.Int32(1000),
	}
	for page := 0; ; page++ {
		if page == MaxPages {
			return fmt.Errorf("ec2inventory: DescribeVpcEndpoints: more than %d pages", MaxPages)
		}
		res, err := call(ctx, inv, &inv.stats.DescribeVpcEndpoints, func(ctx context.Context) (*ec2.DescribeVpcEndpointsOutput, error) {
			return inv.api.DescribeVpcEndpoints(ctx, in)
		})
		if err != nil {
			return fmt.Errorf("ec2inventory: DescribeVpcEndpoints of %d VPCs (%s...): %w", len(vpcIDs), vpcIDs[0], err)
		}
		for _, ep := range res.VpcEndpoints {
			e := out[aws.ToString(ep.VpcId)]
			id := aws.ToString(ep.VpcEndpointId)
			if e != nil && id != "" && !slices.Contains(e.endpoints, id) {
				e.endpoints = append(e.endpoints, id)
			}
		}
		if aws.ToString(res.NextToken) == "" {
			return nil
		}
		in.NextToken = res.NextToken
	}
}

// uniq returns ids without duplicates and empty strings, in order.
func uniq(ids []string) []string {
	out := make([]string, 0, len(ids))
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; dup || id == "" {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// EnabledRegions lists the regions enabled for the account with one
// DescribeRegions call (without AllRegions, EC2 answers the regions the
// account may use: those enabled by default and the opt-in regions it
// opted in to), sorted. Regions that are not opted in are left out even if
// an answer lists them. The call is bounded by timeout (DefaultCallTimeout
// if zero).
func EnabledRegions(ctx context.Context, api RegionsAPI, timeout time.Duration) ([]string, error) {
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := api.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err == nil && res == nil {
		err = errNoOutput
	}
	if err != nil {
		return nil, fmt.Errorf("ec2inventory: DescribeRegions: %w", err)
	}
	var out []string
	for _, r := range res.Regions {
		name := aws.ToString(r.RegionName)
		if name == "" || strings.EqualFold(aws.ToString(r.OptInStatus), "not-opted-in") || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, errors.New("ec2inventory: DescribeRegions: no enabled region in the answer")
	}
	slices.Sort(out)
	return out, nil
}
