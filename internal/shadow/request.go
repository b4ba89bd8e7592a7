package shadow

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
)

// maxARNLen bounds the ARNs a record may carry (IAM role ARNs are far
// shorter: a 64-character name and a 512-character path). Longer is
// ErrMalformedRecord, which also bounds what a Report keeps per role.
const maxARNLen = 2048

// Instance is what the inventory knows of the instance whose credentials
// made a call (the caller fills it from internal/detect's inventory, keyed
// by InstanceID). Empty fields are unknown, never absent.
type Instance struct {
	// VPC is the instance's VPC id: aws:Ec2InstanceSourceVpc.
	VPC string
	// PrivateIPv4 is the primary private IPv4 address of the instance's
	// primary network interface: aws:Ec2InstanceSourcePrivateIPv4.
	PrivateIPv4 string
	// Region is the instance's region, which ec2:SourceInstanceARN's value
	// needs. When empty the key is known to be present but its value is
	// not: Null checks decide, comparisons stay unknown. (The region of the
	// call, awsRegion, is not the instance's: credentials work in every
	// region.)
	Region string
}

// Options is what the caller knows beyond the record and the instance.
// The maps are never modified; the returned Request refers to
// PrincipalTags (it is not copied), so do not modify that map while the
// Request is in use.
type Options struct {
	// EndpointVPCs maps a VPC endpoint id (vpce-...) to the id of the VPC
	// it lives in: aws:SourceVpc of a call through the endpoint, which
	// CloudTrail does not record. An endpoint missing here leaves
	// aws:SourceVpc unknown.
	EndpointVPCs map[string]string
	// PrincipalTags are the tags of the principal (for a role session: the
	// role's tags and the session tags), aws:PrincipalTag/<key>. Tag keys
	// match case-insensitively.
	PrincipalTags map[string]string
	// PrincipalTagsKnown says that PrincipalTags is complete: a tag missing
	// from it is absent. When false, every aws:PrincipalTag key is unknown.
	PrincipalTagsKnown bool
}

// Request is the IAM request context of one call, as far as it is known.
// Build it with FromRecord or NewRequest; the zero Request knows nothing
// (every key is unknown).
type Request struct {
	keys      [numFixedKeys]value
	tags      map[string]string
	tagsKnown bool
}

// get returns the value of key k.
func (r *Request) get(k keyRef) value {
	if k.id != keyPrincipalTag {
		return r.keys[k.id]
	}
	if !r.tagsKnown {
		return unknownValue("principal tags were not supplied (Options.PrincipalTagsKnown is false)")
	}
	if v, ok := r.tags[k.tag]; ok {
		return stringValue(v)
	}
	for t, v := range r.tags {
		if strings.EqualFold(t, k.tag) {
			return stringValue(v)
		}
	}
	return absentValue()
}

// FromRecord builds the request context of the call that rec records,
// made with the credentials of inst's instance (when rec is an
// instance-profile session) and completed with o:
//
//   - over the internet (no vpcEndpointId): aws:SourceIp is
//     sourceIPAddress; aws:SourceVpc, aws:SourceVpce and aws:VpcSourceIp
//     are absent;
//   - through a VPC endpoint: aws:SourceIp is absent, aws:SourceVpce is
//     vpcEndpointId, aws:VpcSourceIp is sourceIPAddress, and aws:SourceVpc
//     is the endpoint's VPC from o.EndpointVPCs, or unknown;
//   - aws:ViaAWSService is false for a call from an address; when an AWS
//     service made the call (invokedBy set, or a service name such as
//     "ec2.amazonaws.com" in sourceIPAddress) it is true for instance
//     credentials (only forward access can use them) and unknown otherwise
//     (a service may hold its own session of a role), and the service's own
//     address is unknown;
//   - instance credentials are an assumed-role session with
//     sessionContext.ec2RoleDelivery: ec2:SourceInstanceARN is present
//     (its value built from the session name, which is the instance id,
//     and inst.Region), aws:Ec2InstanceSourceVpc and
//     aws:Ec2InstanceSourcePrivateIPv4 come from inst (unknown where inst
//     is empty). A session merely named like an instance id, without
//     ec2RoleDelivery, may be an sts:AssumeRole session so named: the
//     three keys are then unknown. Other principals lack all three;
//   - aws:PrincipalAccount is userIdentity.accountId; aws:PrincipalArn is
//     the session issuer (the role) of an assumed-role session, the ARN of
//     an IAM user or root, unknown otherwise; aws:PrincipalTag/* come from
//     o.
//
// A record without a 12-digit account, a principal ARN, a source address,
// or with a malformed endpoint id, is ErrMalformedRecord; a record of an
// AWS service principal (no IAM principal) is ErrNoPrincipal; a malformed
// inst or endpoint mapping is ErrInvalidRequest.
func FromRecord(rec *cloudtrail.Record, inst Instance, o Options) (Request, error) {
	var r Request
	if rec == nil {
		return r, fmt.Errorf("shadow: %w: no record", ErrMalformedRecord)
	}
	p, err := principalOf(rec)
	if err != nil {
		return r, err
	}
	ui := &rec.UserIdentity
	r.keys[keyPrincipalAccount] = stringValue(p.account)
	switch ui.Type {
	case "AssumedRole", "IAMUser", "Root":
		r.keys[keyPrincipalArn] = stringValue(p.principalARN)
	default:
		r.keys[keyPrincipalArn] = unknownValue(fmt.Sprintf("aws:PrincipalArn of a %q identity is not derived from CloudTrail", truncate(ui.Type, 64)))
	}
	r.tags, r.tagsKnown = o.PrincipalTags, o.PrincipalTagsKnown

	creds, err := instanceKeys(&r, rec, p, inst)
	if err != nil {
		return Request{}, err
	}
	if err := networkKeys(&r, rec, creds, o); err != nil {
		return Request{}, err
	}
	return r, nil
}

// principal is who made a call, as a report attributes it.
type principal struct {
	account string
	// role is the session issuer's ARN for a role session, else the
	// principal's ARN: the report's row.
	role string
	// principalARN is aws:PrincipalArn when the identity type has one.
	principalARN string
	// partition is the ARN partition (aws, aws-cn, aws-us-gov).
	partition string
	// session is the role session name of an assumed-role session.
	session string
}

// principalOf validates and extracts the principal of rec.
func principalOf(rec *cloudtrail.Record) (principal, error) {
	ui := &rec.UserIdentity
	if !isAccountID(ui.AccountID) {
		return principal{}, fmt.Errorf("shadow: %w: userIdentity.accountId %q is not a 12-digit account id",
			ErrMalformedRecord, truncate(ui.AccountID, 64))
	}
	if ui.Type == "" {
		return principal{}, fmt.Errorf("shadow: %w: no userIdentity.type", ErrMalformedRecord)
	}
	if ui.ARN == "" && (ui.Type == "AWSService" || ui.Type == "AWSAccount") {
		return principal{}, fmt.Errorf("shadow: %w: userIdentity.type %s", ErrNoPrincipal, ui.Type)
	}
	p := principal{account: ui.AccountID}
	partition, resource, err := splitARN("userIdentity.arn", ui.ARN)
	if err != nil {
		return principal{}, err
	}
	p.partition = partition
	p.principalARN, p.role = ui.ARN, ui.ARN
	if ui.Type == "AssumedRole" {
		issuer := ui.SessionContext.SessionIssuer.ARN
		if _, _, err := splitARN("userIdentity.sessionContext.sessionIssuer.arn", issuer); err != nil {
			return principal{}, err
		}
		rest, ok := strings.CutPrefix(resource, "assumed-role/")
		i := strings.LastIndexByte(rest, '/')
		if !ok || i <= 0 || i == len(rest)-1 {
			return principal{}, fmt.Errorf("shadow: %w: userIdentity.arn %q of an assumed role is not .../assumed-role/ROLE/SESSION",
				ErrMalformedRecord, truncate(ui.ARN, 256))
		}
		p.session = rest[i+1:]
		p.principalARN, p.role = issuer, issuer
	}
	return p, nil
}

// splitARN checks that s is an ARN of at most maxARNLen bytes and returns
// its partition and resource (the second and sixth of its six fields),
// without allocating.
func splitARN(field, s string) (partition, resource string, err error) {
	if len(s) > maxARNLen {
		return "", "", fmt.Errorf("shadow: %w: %s is %d bytes long, more than any ARN (%d)", ErrMalformedRecord, field, len(s), maxARNLen)
	}
	rest, ok := strings.CutPrefix(s, "arn:")
	partition, rest, ok2 := strings.Cut(rest, ":")
	fields := 2
	for ok && ok2 && fields < 5 {
		_, rest, ok2 = strings.Cut(rest, ":")
		fields++
	}
	if !ok || !ok2 || partition == "" || rest == "" {
		return "", "", fmt.Errorf("shadow: %w: %s %q is not an ARN", ErrMalformedRecord, field, truncate(s, 256))
	}
	return partition, rest, nil
}

// isAccountID reports whether s is 12 decimal digits.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// InstanceID returns the instance id that names rec's session when rec is
// an assumed-role session named like an instance ("i-" and 8 or 17
// lowercase hex digits): the instance whose inventory entry FromRecord
// needs. It returns "" otherwise.
func InstanceID(rec *cloudtrail.Record) string {
	ui := &rec.UserIdentity
	if ui.Type != "AssumedRole" {
		return ""
	}
	i := strings.LastIndexByte(ui.ARN, '/')
	if i < 0 || !validInstanceID(ui.ARN[i+1:]) {
		return ""
	}
	return ui.ARN[i+1:]
}

// validInstanceID reports whether id is an EC2 instance id (the rule of
// internal/detect.ValidInstanceID).
func validInstanceID(id string) bool {
	if (len(id) != 10 && len(id) != 19) || !strings.HasPrefix(id, "i-") {
		return false
	}
	for i := 2; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// credentials is what is known of whether a call used instance credentials.
type credentials uint8

const (
	notInstance credentials = iota
	isInstance
	maybeInstance
)

// instanceKeys sets ec2:SourceInstanceARN, aws:Ec2InstanceSourceVpc and
// aws:Ec2InstanceSourcePrivateIPv4.
func instanceKeys(r *Request, rec *cloudtrail.Record, p principal, inst Instance) (credentials, error) {
	if inst.VPC != "" && !isVPCID(inst.VPC) {
		return 0, fmt.Errorf("shadow: %w: Instance.VPC %q is not a VPC id", ErrInvalidRequest, truncate(inst.VPC, 64))
	}
	var private netip.Addr
	if inst.PrivateIPv4 != "" {
		a, err := netip.ParseAddr(inst.PrivateIPv4)
		if err != nil || !a.Is4() {
			return 0, fmt.Errorf("shadow: %w: Instance.PrivateIPv4 %q is not an IPv4 address", ErrInvalidRequest, truncate(inst.PrivateIPv4, 64))
		}
		private = a
	}
	if inst.Region != "" && !isRegion(inst.Region) {
		return 0, fmt.Errorf("shadow: %w: Instance.Region %q is not a region name", ErrInvalidRequest, truncate(inst.Region, 64))
	}
	ui := &rec.UserIdentity
	id := ""
	if ui.Type == "AssumedRole" && validInstanceID(p.session) {
		id = p.session
	}
	creds := notInstance
	switch {
	case ui.Type != "AssumedRole":
	case ui.SessionContext.EC2RoleDelivery != "":
		creds = isInstance
	case id != "":
		creds = maybeInstance
	}
	keys := []keyID{keySourceInstanceARN, keyEc2InstanceSourceVpc, keyEc2InstanceSourcePrivateIPv4}
	switch creds {
	case notInstance:
		for _, k := range keys {
			r.keys[k] = absentValue()
		}
	case maybeInstance:
		why := "the session is named like instance " + id + " but has no ec2RoleDelivery: instance-profile credentials cannot be told from an sts:AssumeRole session so named"
		for _, k := range keys {
			r.keys[k] = unknownValue(why)
		}
	case isInstance:
		switch {
		case id == "":
			r.keys[keySourceInstanceARN] = presentUnknown("instance credentials whose session name is not an instance id")
		case inst.Region == "":
			r.keys[keySourceInstanceARN] = presentUnknown("the region of instance " + id + " is not known (Instance.Region)")
		default:
			r.keys[keySourceInstanceARN] = stringValue("arn:" + p.partition + ":ec2:" + inst.Region + ":" + p.account + ":instance/" + id)
		}
		if inst.VPC != "" {
			r.keys[keyEc2InstanceSourceVpc] = stringValue(inst.VPC)
		} else {
			r.keys[keyEc2InstanceSourceVpc] = presentUnknown("the VPC of the instance is not known (Instance.VPC)")
		}
		if private.IsValid() {
			r.keys[keyEc2InstanceSourcePrivateIPv4] = ipValueOf(private, inst.PrivateIPv4)
		} else {
			// An IPv6-only instance's credentials lack the key: unknown, not present.
			r.keys[keyEc2InstanceSourcePrivateIPv4] = unknownValue("the primary private IPv4 address of the instance is not known (Instance.PrivateIPv4)")
		}
	}
	return creds, nil
}

// isVPCID and isVPCEndpointID are lockpolicy.IsVPCID and
// lockpolicy.IsVPCEndpointID ("vpc-" or "vpce-" and 8 to 17 lowercase hex
// digits) without a regular expression, which cost a fifth of the time
// per record; TestIDShapes keeps them equal.
func isVPCID(s string) bool { return hasIDShape(s, "vpc-") }

func isVPCEndpointID(s string) bool { return hasIDShape(s, "vpce-") }

func hasIDShape(s, prefix string) bool {
	hex, ok := strings.CutPrefix(s, prefix)
	if !ok || len(hex) < 8 || len(hex) > 17 {
		return false
	}
	for i := range len(hex) {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isRegion reports whether s looks like a region name (us-east-1).
func isRegion(s string) bool {
	if len(s) < 4 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// awsInternal is the sourceIPAddress of calls AWS makes internally.
const awsInternal = "AWS Internal"

// networkKeys sets aws:SourceIp, aws:SourceVpc, aws:SourceVpce,
// aws:VpcSourceIp and aws:ViaAWSService.
func networkKeys(r *Request, rec *cloudtrail.Record, creds credentials, o Options) error {
	src := rec.SourceIPAddress
	var ip netip.Addr
	serviceName := false
	if a, err := netip.ParseAddr(src); err == nil && a.Zone() == "" {
		ip = a.Unmap()
	} else {
		switch {
		case src == "":
			return fmt.Errorf("shadow: %w: no sourceIPAddress", ErrMalformedRecord)
		case src == awsInternal:
		case isServiceHost(src):
			serviceName = true
		default:
			return fmt.Errorf("shadow: %w: sourceIPAddress %q is neither an IP address nor an AWS service name",
				ErrMalformedRecord, truncate(src, 128))
		}
	}
	invokedBy := rec.UserIdentity.InvokedBy
	byService := invokedBy != "" || serviceName
	switch {
	case !byService && ip.IsValid():
		r.keys[keyViaAWSService] = boolValue(false)
	case !byService:
		r.keys[keyViaAWSService] = unknownValue(`sourceIPAddress is "AWS Internal": CloudTrail does not say who made the call`)
	case creds == isInstance:
		r.keys[keyViaAWSService] = boolValue(true)
	default:
		r.keys[keyViaAWSService] = unknownValue(fmt.Sprintf("an AWS service (%s) made the call with credentials that are not an instance's: "+
			"CloudTrail does not say whether it used the caller's session (aws:ViaAWSService) or its own", truncate(serviceOf(invokedBy, src), 128)))
	}
	addr := func() value {
		if ip.IsValid() {
			return ipValueOf(ip, src)
		}
		if byService {
			return unknownValue("an AWS service made the call: its own address is not in the record")
		}
		return unknownValue(`sourceIPAddress is "AWS Internal"`)
	}
	vpce := rec.VPCEndpointID
	if vpce == "" {
		r.keys[keySourceIP] = addr()
		r.keys[keySourceVpc], r.keys[keySourceVpce], r.keys[keyVpcSourceIP] = absentValue(), absentValue(), absentValue()
		return nil
	}
	if !isVPCEndpointID(vpce) {
		return fmt.Errorf("shadow: %w: vpcEndpointId %q is not a VPC endpoint id", ErrMalformedRecord, truncate(vpce, 64))
	}
	r.keys[keySourceIP] = absentValue()
	r.keys[keySourceVpce] = stringValue(vpce)
	r.keys[keyVpcSourceIP] = addr()
	switch vpc, ok := o.EndpointVPCs[vpce]; {
	case !ok:
		r.keys[keySourceVpc] = presentUnknown("the VPC of endpoint " + vpce + " is not known (CloudTrail does not record it; add it to Options.EndpointVPCs)")
	case !isVPCID(vpc):
		return fmt.Errorf("shadow: %w: Options.EndpointVPCs[%s] = %q is not a VPC id", ErrInvalidRequest, vpce, truncate(vpc, 64))
	default:
		r.keys[keySourceVpc] = stringValue(vpc)
	}
	return nil
}

// serviceOf names the service that made a call.
func serviceOf(invokedBy, src string) string {
	if invokedBy != "" {
		return invokedBy
	}
	return src
}

// isServiceHost reports whether s is an AWS service's DNS name, as
// CloudTrail writes it in sourceIPAddress for calls a service made.
func isServiceHost(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	for _, suffix := range []string{".amazonaws.com", ".amazonaws.com.cn", ".amazon.com"} {
		if name, ok := strings.CutSuffix(s, suffix); ok && name != "" {
			return true
		}
	}
	return false
}

// NewRequest builds a request from an IAM request context, key -> value
// (a string; "true"/"false" for aws:ViaAWSService), e.g. to ask "what if".
// Keys must be among Keys (any aws:PrincipalTag/<key>); keys not given are
// ABSENT, not unknown, and so are principal tags not given. A multi-valued
// key ([]string) is ErrInvalidRequest: no key the evaluator knows has more
// than one value.
func NewRequest(ctx map[string]any) (Request, error) {
	var r Request
	for i := range r.keys {
		r.keys[i] = absentValue()
	}
	r.tagsKnown = true
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(ctx)) {
		k, ok := lookupKey(name)
		if !ok {
			return Request{}, fmt.Errorf("shadow: %w: context key %q is not one the evaluator knows (%s)",
				ErrInvalidRequest, truncate(name, 128), strings.Join(Keys(), ", "))
		}
		lower := strings.ToLower(name)
		if prev, dup := seen[lower]; dup {
			return Request{}, fmt.Errorf("shadow: %w: context keys %q and %q are the same key", ErrInvalidRequest, prev, name)
		}
		seen[lower] = name
		s, ok := ctx[name].(string)
		if !ok {
			return Request{}, fmt.Errorf("shadow: %w: context key %q: value %T is not a single string", ErrInvalidRequest, name, ctx[name])
		}
		if k.id == keyPrincipalTag {
			if r.tags == nil {
				r.tags = map[string]string{}
			}
			r.tags[k.tag] = s
			continue
		}
		switch k.kind() {
		case kindIP:
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return Request{}, fmt.Errorf("shadow: %w: context key %s: %q is not an IP address", ErrInvalidRequest, name, s)
			}
			r.keys[k.id] = ipValueOf(a.Unmap(), s)
		case kindBool:
			if s != "true" && s != "false" {
				return Request{}, fmt.Errorf("shadow: %w: context key %s: %q is not true or false", ErrInvalidRequest, name, s)
			}
			r.keys[k.id] = stringValue(s)
		default:
			r.keys[k.id] = stringValue(s)
		}
	}
	return r, nil
}

// Context returns the keys whose values are known, key -> string value,
// in the canonical spelling of Keys: the request context an IAM engine
// would be given. Absent and unknown keys are left out (Unknown lists the
// latter).
func (r *Request) Context() map[string]any {
	out := map[string]any{}
	for id := keyID(0); id < numFixedKeys; id++ {
		if v := r.keys[id]; v.p == present {
			out[keyInfos[id].name] = v.s
		}
	}
	if r.tagsKnown {
		for t, v := range r.tags {
			out[principalTagPrefix+t] = v
		}
	}
	return out
}

// Unknown lists, in the order of Keys, the keys whose presence or value is
// not known, and why.
func (r *Request) Unknown() []Unknown {
	var out []Unknown
	for id := keyID(0); id < numFixedKeys; id++ {
		if v := r.keys[id]; v.p == unknownPresence || v.p == presentUnknownValue {
			why := v.why
			if why == "" {
				why = "not set"
			}
			out = append(out, Unknown{Key: keyInfos[id].name, Reason: why})
		}
	}
	if !r.tagsKnown {
		out = append(out, Unknown{Key: principalTagPrefix + "*", Reason: "principal tags were not supplied (Options.PrincipalTagsKnown is false)"})
	}
	return out
}
