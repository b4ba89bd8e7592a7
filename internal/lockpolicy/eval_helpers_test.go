package lockpolicy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/iameval"
)

// evaluate runs reqs through the IAM evaluator in one batch.
func evaluate(t *testing.T, reqs []iameval.Request) []iameval.Result {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(c, reqs)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return results
}

// checkDecision compares a result with the wanted decision and the identity-policy
// statements that must (and alone may) deny it.
func checkDecision(t *testing.T, got iameval.Result, want string, deniers []string) {
	t.Helper()
	if got.Decision != want {
		t.Errorf("decision = %s, want %s\nexplain: %s", got.Decision, want, got.Explain)
	}
	if w := slices.Sorted(slices.Values(deniers)); !slices.Equal(got.DenyingStatements, w) {
		t.Errorf("denied by %q, want %q", got.DenyingStatements, w)
	}
}
