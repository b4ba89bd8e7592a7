package lockpolicy

// DenyAll returns the lock of last resort: it denies every call made with
// the role's credentials, over the internet or through any VPC endpoint,
// except calls that AWS services make on the role's behalf
// (aws:ViaAWSService), exactly like every other lock. The locker writes it
// for a managed role about which nothing is known: no instance at all and
// no readable previous lock.
//
// Render cannot produce it: a Lock with neither source IPs nor VPCs is
// ErrNothingToLock there on purpose, because at synth time an empty lock is
// a configuration mistake. DenyAll is made of Render's two "any" statements
// (SidDenyPublicCallsFromAnyAddress and SidDenyEndpointCallsFromAnyVpc): the
// first denies every request that carries aws:SourceIp, the second every
// request that does not, so nothing but service calls is left. It is never
// empty and never wider than any rendered lock.
func DenyAll() Document {
	return Document{
		Version:   PolicyVersion,
		Statement: []Statement{denyPublicCalls(nil), denyEndpointCalls(nil, nil)},
	}
}
