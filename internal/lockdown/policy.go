package lockdown

import (
	"fmt"
	"net/netip"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// SessionPolicy returns, as compact JSON, the session policy that locks a
// role session to one public address (addr, as AWS sees it in
// aws:SourceIp) and, if vpcs is not empty, to the VPC endpoints of those
// VPCs. lockpolicy.SessionPolicy renders it and documents its statements,
// its checks and its size limit (lockpolicy.MaxSessionPolicySize).
func SessionPolicy(addr netip.Prefix, vpcs []string) ([]byte, error) {
	doc, err := lockpolicy.SessionPolicy(addr, vpcs)
	if err != nil {
		return nil, fmt.Errorf("lockdown: %w", err)
	}
	b, err := doc.JSON()
	if err != nil {
		return nil, fmt.Errorf("lockdown: session policy: %w", err)
	}
	return b, nil
}
