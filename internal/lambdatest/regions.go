package lambdatest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Regions of a Cloud.
//
// AWS_ENDPOINT_URL_EC2 sends the SDK's calls for every region to the one
// Service, so a Cloud tells regions apart the way nothing else on the wire
// does: by the region of the request's SigV4 credential scope
// ("Credential=AKID/DATE/REGION/SERVICE/aws4_request"), which the SDK
// takes from the client's region. Each instance lives in one region
// (Instance.Region, Region by default) and DescribeInstances signed for
// another region does not see it (InvalidInstanceID.NotFound when asked
// by InstanceId, left out when asked by filter), as in AWS. A call signed
// for a region the account has not enabled is refused with AuthFailure,
// and DescribeRegions lists the enabled regions (SetRegions).

// DefaultRegions are the regions a Cloud enables unless SetRegions says
// otherwise: those AWS enables by default for every account.
var DefaultRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
	"ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
	"sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
}

// OptInRegions are regions an account must opt in to; a Cloud knows them
// (DescribeRegions with AllRegions lists them as not opted in) unless
// SetRegions enables them.
var OptInRegions = []string{
	"af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3", "ap-southeast-4",
	"ca-west-1", "eu-central-2", "eu-south-1", "eu-south-2", "il-central-1", "me-central-1", "me-south-1",
}

// SetRegions sets the regions enabled for the Cloud's account (the
// default is DefaultRegions). Regions in OptInRegions are reported as
// opted in; the others as not requiring opt-in.
func (c *Cloud) SetRegions(enabled ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = slices.Clone(enabled)
}

// Regions returns the regions enabled for the Cloud's account, sorted.
func (c *Cloud) Regions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enabledRegions()
}

// enabledRegions is Regions with c.mu held.
func (c *Cloud) enabledRegions() []string {
	r := slices.Clone(c.enabled)
	if r == nil {
		r = slices.Clone(DefaultRegions)
	}
	slices.Sort(r)
	return r
}

// FailRegion makes every EC2 call signed for region answer err (nil
// restores the region), e.g. Service.Throttle() for a region whose API
// rate limit is exhausted. InjectFaults cannot aim at one region: the
// Service serves them all.
func (c *Cloud) FailRegion(region string, err *APIError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = map[string]*APIError{}
	}
	if err == nil {
		delete(c.down, region)
		return
	}
	c.down[region] = err
}

// checkRegion refuses a request signed for a region the account has not
// enabled, as AWS does, and applies FailRegion. Called with c.mu held.
func (c *Cloud) checkRegion(req *Request) error {
	if !slices.Contains(c.enabledRegions(), req.Region) {
		return Errorf(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	if err := c.down[req.Region]; err != nil {
		return err
	}
	return nil
}

// inRegion reports whether instance in lives in the region req is signed
// for.
func inRegion(in *Instance, req *Request) bool {
	r := in.Region
	if r == "" {
		r = Region
	}
	return r == req.Region
}

// describeRegions implements ec2:DescribeRegions: the enabled regions, or
// every region with AllRegions=true (opt-in regions not enabled then show
// "not-opted-in"), narrowed by RegionName.N and the filters region-name
// and opt-in-status.
func (c *Cloud) describeRegions(req *Request) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkRegion(req); err != nil {
		return "", err
	}
	enabled := c.enabledRegions()
	type regionInfo struct{ name, optIn string }
	var all []regionInfo
	for _, r := range enabled {
		status := "opt-in-not-required"
		if slices.Contains(OptInRegions, r) {
			status = "opted-in"
		}
		all = append(all, regionInfo{r, status})
	}
	if req.Get("AllRegions") == "true" {
		for _, r := range OptInRegions {
			if !slices.Contains(enabled, r) {
				all = append(all, regionInfo{r, "not-opted-in"})
			}
		}
	} else if v := req.Get("AllRegions"); v != "" && v != "false" {
		return "", Errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid value %q for AllRegions", v)
	}
	names := req.List("RegionName")
	for _, n := range names {
		if !slices.ContainsFunc(all, func(r regionInfo) bool { return r.name == n }) {
			return "", Errorf(http.StatusBadRequest, "InvalidParameterValue", "Invalid region: %s", n)
		}
	}
	filters := map[string][]string{}
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		if !req.Form.Has(p + ".Name") {
			break
		}
		switch name := req.Get(p + ".Name"); name {
		case "region-name", "opt-in-status":
			filters[name] = req.List(p + ".Value")
		default:
			return "", Errorf(http.StatusBadRequest, "InvalidParameterValue", "The filter '%s' is invalid", name)
		}
	}
	slices.SortFunc(all, func(a, b regionInfo) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	b.WriteString("<regionInfo>")
	for _, r := range all {
		if len(names) > 0 && !slices.Contains(names, r.name) {
			continue
		}
		if v, ok := filters["region-name"]; ok && !slices.Contains(v, r.name) {
			continue
		}
		if v, ok := filters["opt-in-status"]; ok && !slices.Contains(v, r.optIn) {
			continue
		}
		fmt.Fprintf(&b, "<item><regionName>%s</regionName><regionEndpoint>ec2.%s.amazonaws.com</regionEndpoint><optInStatus>%s</optInStatus></item>",
			XMLText(r.name), XMLText(r.name), r.optIn)
	}
	b.WriteString("</regionInfo>")
	return b.String(), nil
}

// signingRegion extracts the region from a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
// ...").
func signingRegion(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(scope, "/")
	if len(parts) < 5 {
		return ""
	}
	return parts[2]
}
