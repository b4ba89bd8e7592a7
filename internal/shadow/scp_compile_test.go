package shadow_test

import (
	"testing"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
)

// TestTheSCPCompiles: the organisation SCP (lockpolicy.SCP with every option) is in the
// vocabulary shadow mode evaluates, so a proposed SCP can run in report-only mode.
func TestTheSCPCompiles(t *testing.T) {
	doc, err := lockpolicy.SCP(lockpolicy.SCPOptions{RestrictInternet: true, ExemptAccounts: []string{"111122223333"}, ExemptRoleTag: "defenders:scp-exempt",
		Trust: lockpolicy.Trust{EgressPrefixes: []string{"192.0.2.128/28"}, SharedVPCEndpoints: []string{"vpce-0bbbb2222cccc3333"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shadow.Compile(doc); err != nil {
		t.Fatal(err)
	}
}
