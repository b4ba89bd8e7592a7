// Package iameval evaluates IAM requests with an independent IAM engine, the
// npm package @cloud-copilot/iam-simulate, run out of process under Node.
//
// It exists so that tests can check what a policy MEANS (which requests it
// allows and denies), not just what it looks like. The simulator is AGPL
// licensed: it is a test-time tool installed under .tools/node_modules by
// `make tools` and is never linked into or shipped with Defenders.
//
// Anything the simulator cannot evaluate faithfully is a loud error rather
// than a silent deny: policy validation errors, unknown actions, and
// context keys the simulator would drop as not applicable to the action.
package iameval

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed simulate.mjs
var simulateScript string

// Decisions returned by the simulator.
const (
	// Allowed means an Allow statement matched and no Deny did.
	Allowed = "Allowed"
	// ExplicitlyDenied means a Deny statement matched.
	ExplicitlyDenied = "ExplicitlyDenied"
	// ImplicitlyDenied means nothing allowed the request.
	ImplicitlyDenied = "ImplicitlyDenied"
)

// simulatorPackage is the npm package, relative to node_modules.
const simulatorPackage = "@cloud-copilot/iam-simulate"

// Request is one API call to evaluate.
type Request struct {
	// Name identifies the request in results and errors; it must be unique
	// within a batch.
	Name string
	// Principal is the caller's ARN, e.g. a role session
	// arn:aws:sts::111122223333:assumed-role/role/i-0abc. Its account is
	// the account of the request.
	Principal string
	// Action is the IAM action, e.g. "ec2:DescribeInstances".
	Action string
	// Resource is the resource ARN, or "*".
	Resource string
	// Context is the request context: key -> string or []string.
	Context map[string]any
	// IdentityPolicies are the policies attached to the principal.
	IdentityPolicies []Policy
	// ResourcePolicy is the resource's own policy (an SNS topic policy, a KMS key policy), or
	// nil. A service principal (cloudwatch.amazonaws.com) is allowed by this alone.
	ResourcePolicy *Policy
	// ResourceAccount is the account that owns Resource. Default: the principal's account;
	// required when Principal is a service principal (which has no account).
	ResourceAccount string
	// SCPs are the service control policies that apply to the principal's
	// account, one SCPLevel per level of its organisation, from the root
	// down to the account itself (root first, account last). Nil evaluates
	// no SCP at all, as for an account outside any organisation.
	//
	// An SCP grants nothing but it can filter: with SCPs a request is
	// allowed only if, at EVERY level, some SCP statement allows it and none
	// denies it, besides the identity (and resource) policies allowing it.
	// AWS attaches FullAWSAccessSCP to every root, OU and account by default;
	// a deny-list SCP is evaluated the way AWS runs it by listing
	// FullAWSAccessSCP at each level, next to the SCPs under test.
	SCPs []SCPLevel
}

// SCPLevel is one level of an organisation (its root, an OU or an account)
// and the service control policies attached to it.
type SCPLevel struct {
	// Target names the level: the root's id (r-...), an OU's id (ou-...)
	// or the account id. It appears in explanations only.
	Target string
	// Policies are the SCPs attached to Target. AWS requires at least one;
	// an empty list is an error here, not an implicit deny.
	Policies []Policy
}

// FullAWSAccessSCP is the AWS managed SCP FullAWSAccess, which AWS attaches
// to every root, OU and account unless it is replaced: it allows every
// action, so that deny-list SCPs next to it only take away.
const FullAWSAccessSCP = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// Policy is a named IAM policy document.
type Policy struct {
	// Name identifies the policy in explanations.
	Name string
	// Document is the policy JSON.
	Document json.RawMessage
}

// Result is the simulator's verdict on one Request.
type Result struct {
	// Name is the Request's name.
	Name string
	// Decision is Allowed, ExplicitlyDenied or ImplicitlyDenied.
	Decision string
	// DenyingStatements lists the Sid of every identity-policy Deny
	// statement that matched, sorted.
	DenyingStatements []string
	// DenyingSCPStatements lists the Sid of every SCP Deny statement that
	// matched, at any level of Request.SCPs, sorted. A request that no SCP
	// allows at some level is ImplicitlyDenied with this list empty.
	DenyingSCPStatements []string
	// Explain is the simulator's full analysis, for debugging.
	Explain json.RawMessage
}

// wireRequest is a Request as simulate.mjs reads it.
type wireRequest struct {
	Name             string         `json:"name"`
	Principal        string         `json:"principal"`
	Action           string         `json:"action"`
	Resource         string         `json:"resource"`
	AccountID        string         `json:"accountId"`
	Context          map[string]any `json:"context"`
	IdentityPolicies []wirePolicy   `json:"identityPolicies"`
	ResourcePolicy   *wirePolicy    `json:"resourcePolicy,omitempty"`
	SCPs             []wireSCPLevel `json:"serviceControlPolicies"`
}

type wireSCPLevel struct {
	OrgIdentifier string       `json:"orgIdentifier"`
	Policies      []wirePolicy `json:"policies"`
}

type wirePolicy struct {
	Name     string          `json:"name"`
	Document json.RawMessage `json:"document"`
}

// wireResult is one element of simulate.mjs's output.
type wireResult struct {
	Name               string          `json:"name"`
	Decision           string          `json:"decision"`
	Errors             json.RawMessage `json:"errors"`
	IgnoredContextKeys []string        `json:"ignoredContextKeys"`
	DenyingStatements  []string        `json:"denyingStatements"`
	DenyingSCP         []string        `json:"scpDenyingStatements"`
	Explain            json.RawMessage `json:"explain"`
}

// Evaluate runs every request through iam-simulate in ONE node process and
// returns the results in request order. It fails if node or the simulator
// is missing, if any request is malformed, or if the simulator reports
// errors or ignores a context key for any request.
func Evaluate(ctx context.Context, reqs []Request) ([]Result, error) {
	wire, err := toWire(reqs)
	if err != nil {
		return nil, err
	}
	nodePath, modulesDir, err := FindNode()
	if err != nil {
		return nil, err
	}
	input, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("iameval: encode requests: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, nodePath, "--input-type=module", "-e", simulateScript)
	cmd.Dir = filepath.Dir(modulesDir)
	cmd.Stdin = bytes.NewReader(input)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("iameval: run %s: %w: %s", nodePath, err, strings.TrimSpace(stderr.String()))
	}
	var out []wireResult
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("iameval: decode simulator output: %w (stderr: %s)", err, strings.TrimSpace(stderr.String()))
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("iameval: simulator returned %d results for %d requests", len(out), len(reqs))
	}
	results := make([]Result, len(out))
	var errs []error
	for i, r := range out {
		if r.Name != reqs[i].Name {
			return nil, fmt.Errorf("iameval: result %d is for %q, want %q", i, r.Name, reqs[i].Name)
		}
		if len(r.Errors) > 0 && string(r.Errors) != "null" {
			errs = append(errs, fmt.Errorf("request %q: simulator errors: %s", r.Name, r.Errors))
			continue
		}
		if len(r.IgnoredContextKeys) > 0 {
			errs = append(errs, fmt.Errorf("request %q: context keys %q do not apply to %s and would be silently dropped",
				r.Name, r.IgnoredContextKeys, reqs[i].Action))
			continue
		}
		switch r.Decision {
		case Allowed, ExplicitlyDenied, ImplicitlyDenied:
		default:
			errs = append(errs, fmt.Errorf("request %q: unexpected decision %q", r.Name, r.Decision))
			continue
		}
		results[i] = Result{Name: r.Name, Decision: r.Decision, DenyingStatements: r.DenyingStatements,
			DenyingSCPStatements: r.DenyingSCP, Explain: r.Explain}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("iameval: evaluate: %w", err)
	}
	return results, nil
}

// toWire validates reqs and converts them to the simulate.mjs input format.
func toWire(reqs []Request) ([]wireRequest, error) {
	seen := make(map[string]bool, len(reqs))
	wire := make([]wireRequest, len(reqs))
	var errs []error
	for i, r := range reqs {
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("request %d: empty name", i))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("request %q: duplicate name", r.Name))
			continue
		}
		seen[r.Name] = true
		account := r.ResourceAccount
		if strings.HasSuffix(r.Principal, ".amazonaws.com") && !strings.HasPrefix(r.Principal, "arn:") {
			if len(account) != 12 {
				errs = append(errs, fmt.Errorf("request %q: service principal %s needs a 12-digit ResourceAccount", r.Name, r.Principal))
				continue
			}
		} else if a, err := accountOf(r.Principal); err != nil {
			errs = append(errs, fmt.Errorf("request %q: %w", r.Name, err))
			continue
		} else if account == "" {
			account = a
		}
		var rp *wirePolicy
		if r.ResourcePolicy != nil {
			if !json.Valid(r.ResourcePolicy.Document) {
				errs = append(errs, fmt.Errorf("request %q: resource policy %q is not valid JSON", r.Name, r.ResourcePolicy.Name))
			}
			rp = &wirePolicy{Name: r.ResourcePolicy.Name, Document: r.ResourcePolicy.Document}
		}
		ctx := make(map[string]any, len(r.Context))
		for k, v := range r.Context {
			switch v.(type) {
			case string, []string:
				ctx[k] = v
			default:
				errs = append(errs, fmt.Errorf("request %q: context key %q: value %T is not a string or []string", r.Name, k, v))
			}
		}
		pols := make([]wirePolicy, len(r.IdentityPolicies))
		for j, p := range r.IdentityPolicies {
			if !json.Valid(p.Document) {
				errs = append(errs, fmt.Errorf("request %q: policy %q is not valid JSON", r.Name, p.Name))
			}
			pols[j] = wirePolicy(p)
		}
		scps := make([]wireSCPLevel, len(r.SCPs))
		for j, level := range r.SCPs {
			if level.Target == "" {
				errs = append(errs, fmt.Errorf("request %q: SCP level %d: empty target", r.Name, j))
			}
			if len(level.Policies) == 0 {
				errs = append(errs, fmt.Errorf("request %q: SCP level %q has no policies: AWS requires at least one SCP on every root, OU and account (FullAWSAccessSCP by default)",
					r.Name, level.Target))
			}
			scps[j] = wireSCPLevel{OrgIdentifier: level.Target, Policies: make([]wirePolicy, len(level.Policies))}
			for k, p := range level.Policies {
				if !json.Valid(p.Document) {
					errs = append(errs, fmt.Errorf("request %q: SCP %q is not valid JSON", r.Name, p.Name))
				}
				scps[j].Policies[k] = wirePolicy(p)
			}
		}
		wire[i] = wireRequest{
			Name: r.Name, Principal: r.Principal, Action: r.Action, Resource: r.Resource,
			AccountID: account, Context: ctx, IdentityPolicies: pols, ResourcePolicy: rp, SCPs: scps,
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("iameval: invalid requests: %w", err)
	}
	return wire, nil
}

// accountOf returns the account id field of an ARN.
func accountOf(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || len(parts[4]) != 12 {
		return "", fmt.Errorf("principal %q is not an ARN with a 12-digit account id", arn)
	}
	return parts[4], nil
}

// FindNode locates the Node binary and the node_modules folder that holds
// @cloud-copilot/iam-simulate, walking up from the working directory to the
// first .tools/node_modules that has the package. It prefers the Node
// installed there (.tools/node_modules/.bin/node) and falls back to node on
// PATH.
func FindNode() (nodePath, modulesDir string, err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", "", fmt.Errorf("iameval: find node: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		mods := filepath.Join(dir, ".tools", "node_modules")
		if _, err := os.Stat(filepath.Join(mods, filepath.FromSlash(simulatorPackage), "package.json")); err == nil {
			modulesDir = mods
			break
		}
		if filepath.Dir(dir) == dir {
			return "", "", fmt.Errorf("iameval: %s not found in .tools/node_modules of %s or any parent: run `make tools` (npm ci --prefix .tools)",
				simulatorPackage, wd)
		}
	}
	nodePath = filepath.Join(modulesDir, ".bin", "node")
	if _, err := os.Stat(nodePath); err == nil {
		return nodePath, modulesDir, nil
	}
	nodePath, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("iameval: no node in %s and none on PATH: run `make tools` (npm ci --prefix .tools): %w",
			filepath.Join(modulesDir, ".bin"), err)
	}
	return nodePath, modulesDir, nil
}
