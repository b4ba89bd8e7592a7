// Package guard turns `cdk synth` into a policy check for CI. It is a thin front end over the
// review (internal/review): after the app is synthesized it reviews every CloudFormation template
// of the cloud assembly, nested stacks and stages included, with the same rules as
// `go run ./cmd/review` (DEF-SG-1 SSH/RDP/all ports open to the internet, DEF-IMDS-1 IMDSv1,
// DEF-LOCK-1 EC2 role without a lock, DEF-LOCK-5 a lock that admits another instance's address,
// DEF-SG-2 SSH/RDP from a wide range, ...: the catalogue is review.Rules and the README). Because
// it judges the templates, what CloudFormation will deploy, property overrides
// (AddPropertyOverride), raw CfnResources, L1 and L2 constructs are judged alike.
//
// Use it in the app's main, in place of app.Synth:
//
//	app := awscdk.NewApp(nil)
//	// ... stacks ...
//	if err := guard.Synth(app); err != nil { log.Fatal(err) }
//
// guard.Synth prints every finding to stderr as "[Error at /construct/path] DEF-...: message"
// (warnings and acknowledged findings too; they do not fail the synth) and returns an error
// when there is an error finding, so the app exits non-zero and `cdk synth` fails. A finding is
// acknowledged per rule and per resource with a written reason in the resource's Metadata
// (review.AcknowledgeKey); lock.Exempt writes such an acknowledgement of DEF-LOCK-1.
//
// Two things differ from CDK annotations: warnings are printed but `cdk synth --strict` does not
// turn them into errors (the CLI applies --strict to the manifest's annotations, and the
// manifest is written before the templates can be judged); and a nested stack's template is
// found through its aws:asset:path metadata, which the CDK CLI turns on: an app synthesized
// without the CLI and without the context "aws:cdk:enable-asset-metadata" gets a DEF-TPL-1
// warning naming each nested stack that was not reviewed.
//
// Migration from guard.Add (which judged the construct tree, before synthesis): replace
// `app.Synth(nil)` with `if err := guard.Synth(app); err != nil { log.Fatal(err) }`; guard.Add can
// then be removed. An app that still calls guard.Add but synthesizes with app.Synth fails its
// synth with that one-line fix in the message: it is never silently unguarded.
//
// # Why not CDK's policy validation plugins
//
// CDK runs IPolicyValidationPluginBeta1 plugins (AppProps.PolicyValidationBeta1) on the
// synthesized templates, the route cdk-nag v3 took. Tested from Go (TestPolicyValidationPlugin
// in this package, and by hand with `cdk synth` and CDK CLI 2.1148.1), with a Go plugin that
// reports one violation on an SQS queue:
//
//   - aws-cdk-go v2.240.0 (the oldest we support): the Go plugin is called (with the absolute template paths) and CDK prints a report that names the
//     rule and the construct path (S/Queue/Resource, mapped from the logical id) on stderr, then
//     "Validation failed". But synth does NOT fail: app.Synth returns normally and the Go
//     process exits 0; CDK only sets process.exitCode = 1 inside the jsii kernel, a Node child
//     process whose exit code nobody reads. `cdk synth` prints the report and exits 0. No report
//     file is written unless the context "@aws-cdk/core:validationReportJson" is true (then
//     policy-validation-report.json, with constructPath and ruleName). The v2.250.0 source does
//     the same (read, not run). A Go panic in Validate is not caught by CDK as a plugin failure:
//     it unwinds out of app.Synth in Go, with the jsii kernel left in the middle of the call
//     (it dies with EPIPE), before CDK prints any report: no way to fail a synth cleanly.
//   - aws-cdk-go v2.277.0: synth fails. Run directly, app.Synth panics with "ValidationFailed:
//     Validation failed. A copy of this report can be found in: .../validation-report.json" after
//     printing "ERROR <description> (<plugin>) / S/Queue/Resource (Queue4A7E3555) ... Acknowledge
//     with '<plugin>::<rule>'"; validation-report.json (ruleName, constructPath, logicalId) is
//     always written. Under `cdk synth` the app exits 0 and the CLI reads the report, prints it
//     and exits 1 ("Synthesis finished with errors"). But AppProps.PolicyValidationBeta1 is
//     deprecated there ("[WARNING] ... Use `Validations.of(app).addPlugins()` instead", which
//     `make synth` and `make compat` reject), and Validations does not exist in v2.240.0.
//
// A plugin would therefore let every error through on v2.240 to v2.250 at least (Go's minimum
// version selection gives a user anything from our go.mod's v2.240.0 up), and needs different
// code on each side of the change. guard.Synth works the same on every version: the Go process
// that synthesized the app reviews the assembly it wrote, prints the findings and fails. It also
// cannot be silenced by CDK's own acknowledgements (Validations.acknowledge), which know nothing
// of our rules: acknowledgements are the review's, per rule and resource, with a reason.
//
// Construct paths come from the assembly itself: the aws:cdk:logicalId entries of the manifest
// (or of the stack's additionalMetadataFile, schema 55), which CDK writes for every CfnElement
// whether or not path metadata is on; a nested stack's resources are told apart from its
// parent's by the nested stack's construct path.
package guard

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/review"
)

// ExemptMetadataKey is the Metadata key lock.Exempt used to write on a role (kept equal to
// review.ExemptKey, which the review still reads as an acknowledgement of DEF-LOCK-1).
const ExemptMetadataKey = contract.ExemptMetadataKey

// Finding is one problem found by the guard.
type Finding struct {
	// Rule is the id of the rule that found it ("DEF-SG-1", see review.Rules).
	Rule string
	// Error is true for errors (synth fails), false for warnings.
	Error bool
	// Stack is the stack of the resource at fault (a nested stack: "<parent>/<child>").
	Stack string
	// LogicalID is the logical id of the resource at fault in its template.
	LogicalID string
	// Path is the construct path of the resource at fault (e.g. "s/Sg/Resource"), or "" when the
	// template was not written by the CDK.
	Path string
	// Message says what is wrong and how to fix it.
	Message string
	// Reason is why the finding is acknowledged (Result.Acknowledged only).
	Reason string
}

// Where names the resource for people: its construct path, else "<stack>/<logical id>".
func (f Finding) Where() string {
	if f.Path != "" {
		return "/" + f.Path
	}
	if f.Stack == "" {
		return f.LogicalID
	}
	return f.Stack + "/" + f.LogicalID
}

// Result is the guard's verdict on one cloud assembly.
type Result struct {
	// Dir is the cloud assembly directory reviewed.
	Dir string
	// Stacks is the number of stacks reviewed (nested stacks and stages included).
	Stacks int
	// Findings lists the errors, then the warnings.
	Findings []Finding
	// Acknowledged lists the findings acknowledged by their resource, each with its reason.
	Acknowledged []Finding
	// Errors and Warnings count the findings of each level.
	Errors, Warnings int
}

// Err returns an error naming the error findings, or nil when there is none.
func (r *Result) Err() error {
	if r.Errors == 0 {
		return nil
	}
	var names []string
	for _, f := range r.Findings {
		if f.Error {
			names = append(names, f.Rule+" at "+clean(f.Where()))
		}
	}
	return fmt.Errorf("defenders guard: %s (%s): fix them, or acknowledge a rule for one resource with a reason (see above)",
		plural(r.Errors, "error"), strings.Join(names, ", "))
}

// Print writes the verdict for a terminal or a CI log: a summary line, then one line per finding,
// errors first, in the style of the CDK CLI's annotations.
func (r *Result) Print(w io.Writer) {
	summary := "no findings"
	if len(r.Findings)+len(r.Acknowledged) > 0 {
		summary = fmt.Sprintf("%s, %s, %d acknowledged", plural(r.Errors, "error"), plural(r.Warnings, "warning"), len(r.Acknowledged))
	}
	fmt.Fprintf(w, "defenders guard: %s in %s (%s)\n", summary, plural(r.Stacks, "stack"), clean(r.Dir))
	for _, f := range r.Findings {
		level := "Warning"
		if f.Error {
			level = "Error"
		}
		fmt.Fprintf(w, "[%s at %s] %s (%s): %s\n", level, clean(f.Where()), f.Rule, clean(f.LogicalID), clean(f.Message))
	}
	for _, f := range r.Acknowledged {
		fmt.Fprintf(w, "[Acknowledged at %s] %s (%s): %s\n", clean(f.Where()), f.Rule, clean(f.LogicalID), clean(f.Reason))
	}
}

// Check reviews the cloud assembly in dir (the directory app.Synth wrote) and returns the
// findings with their construct paths. The error is for an assembly that cannot be read.
func Check(dir string) (*Result, error) {
	a, err := review.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("defenders guard: %w", err)
	}
	rep := review.Analyze(a)
	ix, err := readPaths(dir)
	if err != nil {
		return nil, fmt.Errorf("defenders guard: %w", err)
	}
	stacks := map[string]review.StackInfo{}
	for _, st := range rep.Stacks {
		stacks[st.Name] = st
	}
	res := &Result{Dir: dir, Stacks: len(rep.Stacks), Errors: rep.Errors, Warnings: rep.Warnings}
	convert := func(f review.Finding) Finding {
		return Finding{Rule: f.Rule, Error: f.Severity == review.SeverityError, Stack: f.Stack, LogicalID: f.Resource,
			Path: ix.path(stacks, f.Stack, f.Resource), Message: f.Message, Reason: f.Reason}
	}
	for _, f := range rep.Findings {
		res.Findings = append(res.Findings, convert(f))
	}
	for _, f := range rep.Acknowledged {
		res.Acknowledged = append(res.Acknowledged, convert(f))
	}
	return res, nil
}

// output is where Synth prints (tests replace it).
var output io.Writer = os.Stderr

// Synth synthesizes app, reviews the cloud assembly it wrote (Check), prints the findings to
// stderr and returns an error when one of them is an error, or when the synth itself fails (a
// jsii panic is returned as an error). Call it in place of app.Synth in the app's main and exit
// non-zero on an error: that is what makes `cdk synth` fail.
func Synth(app awscdk.App) (err error) {
	active.Store(app, true)
	defer active.Delete(app)
	var dir string
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("defenders guard: synth failed: %v", r)
			}
		}()
		dir = *app.Synth(nil).Directory()
	}()
	if err != nil {
		return err
	}
	res, err := Check(dir)
	if err != nil {
		return err
	}
	res.Print(output)
	return res.Err()
}

// active holds the apps that Synth is synthesizing (keyed by the app's Go proxy: jsii hands out
// one per object), so that a guard.Add validation can tell Synth from a bare app.Synth.
var active sync.Map

// MigrationMessage is the error a guard.Add validation reports when the app is synthesized
// without guard.Synth.
const MigrationMessage = "defenders guard: guard.Add no longer checks anything by itself: the guard now judges the synthesized " +
	"CloudFormation templates, which exist only after synth. Replace `app.Synth(nil)` with " +
	"`if err := guard.Synth(app); err != nil { log.Fatal(err) }` (guard.Add can then be removed)"

// Add is kept so that apps written for the earlier guard compile. It no longer judges anything:
// it makes the synth fail with MigrationMessage unless the app is synthesized by Synth (which
// does the judging), so that an app that was guarded never silently stops being guarded.
//
// Deprecated: synthesize with Synth instead; Add is then unnecessary.
func Add(scope constructs.IConstruct) {
	scope.Node().AddValidation(&validation{root: scope.Node().Root()})
}

type validation struct{ root constructs.IConstruct }

// Validate implements constructs.IValidation.
func (v *validation) Validate() *[]*string {
	if app, ok := v.root.(awscdk.App); ok {
		if _, ok := active.Load(app); ok {
			return &[]*string{}
		}
	}
	msg := MigrationMessage
	return &[]*string{&msg}
}

// clean makes s safe to print on one terminal line: control characters (newlines, carriage
// returns, escape sequences that a resource id or a metadata value could carry) are shown
// escaped instead of acting on the terminal.
func clean(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
