package shadow

import (
	"net/netip"
	"strings"
)

// keyID identifies a condition key the evaluator knows.
type keyID uint8

const (
	keySourceIP keyID = iota
	keyVpcSourceIP
	keySourceVpc
	keySourceVpce
	keyViaAWSService
	keyEc2InstanceSourceVpc
	keyEc2InstanceSourcePrivateIPv4
	keySourceInstanceARN
	keyPrincipalAccount
	keyPrincipalArn
	numFixedKeys
	// keyPrincipalTag is aws:PrincipalTag/<tag>; the tag is in keyRef.tag.
	keyPrincipalTag = numFixedKeys
)

// principalTagPrefix is the prefix of aws:PrincipalTag/<tag>.
const principalTagPrefix = "aws:PrincipalTag/"

// keyKind is the IAM data type of a key, which decides the operators that
// apply to it.
type keyKind uint8

const (
	kindString keyKind = iota
	kindIP
	kindBool
	kindARN
)

// keyInfo describes one known key.
type keyInfo struct {
	name string
	kind keyKind
}

// keyInfos is indexed by keyID; keyPrincipalTag is last.
var keyInfos = [...]keyInfo{
	keySourceIP:                     {"aws:SourceIp", kindIP},
	keyVpcSourceIP:                  {"aws:VpcSourceIp", kindIP},
	keySourceVpc:                    {"aws:SourceVpc", kindString},
	keySourceVpce:                   {"aws:SourceVpce", kindString},
	keyViaAWSService:                {"aws:ViaAWSService", kindBool},
	keyEc2InstanceSourceVpc:         {"aws:Ec2InstanceSourceVpc", kindString},
	keyEc2InstanceSourcePrivateIPv4: {"aws:Ec2InstanceSourcePrivateIPv4", kindIP},
	keySourceInstanceARN:            {"ec2:SourceInstanceARN", kindARN},
	keyPrincipalAccount:             {"aws:PrincipalAccount", kindString},
	keyPrincipalArn:                 {"aws:PrincipalArn", kindARN},
	keyPrincipalTag:                 {principalTagPrefix + "*", kindString},
}

// keysByLower maps the lower-cased name of every fixed key to its id.
var keysByLower = func() map[string]keyID {
	m := make(map[string]keyID, numFixedKeys)
	for id := keyID(0); id < numFixedKeys; id++ {
		m[strings.ToLower(keyInfos[id].name)] = id
	}
	return m
}()

// Keys lists the condition keys the evaluator derives from a CloudTrail
// record (and the caller's Options), in a fixed order. A document that
// uses any other key is ErrUnsupported.
func Keys() []string {
	out := make([]string, 0, len(keyInfos))
	for _, k := range keyInfos {
		out = append(out, k.name)
	}
	return out
}

// keyRef is a key as a policy names it.
type keyRef struct {
	id keyID
	// tag is the tag key of aws:PrincipalTag/<tag>, as the policy spells it
	// (tag keys are matched case-insensitively).
	tag string
}

// name renders the key in its canonical spelling.
func (k keyRef) name() string {
	if k.id == keyPrincipalTag {
		return principalTagPrefix + k.tag
	}
	return keyInfos[k.id].name
}

func (k keyRef) kind() keyKind { return keyInfos[k.id].kind }

// lookupKey resolves a key name, case-insensitively.
func lookupKey(name string) (keyRef, bool) {
	lower := strings.ToLower(name)
	if id, ok := keysByLower[lower]; ok {
		return keyRef{id: id}, true
	}
	if tag, ok := strings.CutPrefix(lower, strings.ToLower(principalTagPrefix)); ok && tag != "" {
		return keyRef{id: keyPrincipalTag, tag: name[len(principalTagPrefix):]}, true
	}
	return keyRef{}, false
}

// presence is what is known of a key in a request. The zero presence is
// unknown: a Request field nobody set is never taken for absent.
type presence uint8

const (
	// unknownPresence: whether the key is in the request is not known.
	unknownPresence presence = iota
	// absent: the key is not in the request.
	absent
	// present: the key is in the request with value s (and ip for IP keys).
	present
	// presentUnknownValue: the key is in the request, its value is not
	// known. Null checks decide; comparisons do not.
	presentUnknownValue
)

// value is one key of a request.
type value struct {
	p  presence
	s  string
	ip netip.Addr
	// why says why the value is unknown.
	why string
}

func absentValue() value { return value{p: absent} }

func stringValue(s string) value { return value{p: present, s: s} }

func ipValue(a netip.Addr) value { return value{p: present, s: a.String(), ip: a} }

// ipValueOf is ipValue for an address parsed from text: the text is kept
// when it is already the canonical form, which saves an allocation.
func ipValueOf(a netip.Addr, text string) value {
	var buf [64]byte
	if string(a.AppendTo(buf[:0])) == text {
		return value{p: present, s: text, ip: a}
	}
	return ipValue(a)
}

func unknownValue(why string) value { return value{p: unknownPresence, why: why} }

func presentUnknown(why string) value { return value{p: presentUnknownValue, why: why} }

func boolValue(b bool) value {
	if b {
		return stringValue("true")
	}
	return stringValue("false")
}
