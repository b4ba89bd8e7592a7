package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/cloudformationinclude"
	"github.com/aws/jsii-runtime-go"
	"go.yaml.in/yaml/v3"

	"github.com/defenders-cdk/defenders/constructs/guard"
	"github.com/defenders-cdk/defenders/internal/review"
)

// verdictTemplateDirs are the review's test templates: hand-written ones, the YAML set and the
// corpus of third-party templates (each directory read if present, not recursively; nested
// templates are also reached through their parents, as nested stacks).
var verdictTemplateDirs = []string{
	"../internal/review/testdata/templates",
	"../internal/review/testdata/yaml",
	"../internal/review/testdata/yaml/nested",
	"../internal/review/testdata/corpus",
}

// cannotImport lists the templates ("<directory>/<file>") CfnInclude cannot import, each with the
// reason (a substring of CfnInclude's error). A template that fails to import and is not listed fails the test: no
// template drops out of the comparison silently.
var cannotImport = map[string]string{}

// templateSection matches the start of a Resources section, in JSON or YAML: what makes a file a
// template (corpus/expected.json and README.md are not).
var templateSection = regexp.MustCompile(`"Resources"\s*:|(?m)^Resources\s*:`)

// verdict is a set of findings as "<rule> <level> <logical id>", sorted.
type verdict struct{ active, acknowledged []string }

func (v verdict) String() string {
	return fmt.Sprintf("findings %q, acknowledged %q", v.active, v.acknowledged)
}

func verdictKey(rule string, errLevel bool, id string) string {
	level := "warning"
	if errLevel {
		level = "error"
	}
	return rule + " " + level + " " + id
}

// TestGuardAndReviewGiveTheSameVerdictOnEveryTestTemplate imports every test template of the
// review into a CDK stack with CfnInclude (nested stacks given by a local path too, through
// LoadNestedStacks), synthesizes the app, runs the guard on the cloud assembly, and compares the
// set of (rule, level, logical id), acknowledged findings apart, with review.Review on the file
// itself.
func TestGuardAndReviewGiveTheSameVerdictOnEveryTestTemplate(t *testing.T) {
	var files []string
	for _, dir := range verdictTemplateDirs {
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || !slices.Contains([]string{".json", ".yaml", ".yml", ".template"}, strings.ToLower(filepath.Ext(e.Name()))) {
				continue
			}
			f := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if templateSection.Match(b) {
				files = append(files, f)
			}
		}
	}
	if len(files) < 5 {
		t.Fatalf("only %d test templates found in %v", len(files), verdictTemplateDirs)
	}

	// The review, directly on each file; its stacks tell which nested templates it read by path.
	direct := map[string]verdict{}
	nested := map[string][]review.StackInfo{}
	rejected := map[string]error{}
	for _, f := range files {
		rep, err := review.Review(f)
		if err != nil {
			rejected[f] = err
			continue
		}
		var v verdict
		for _, x := range rep.Findings {
			v.active = append(v.active, verdictKey(x.Rule, x.Severity == review.SeverityError, x.Resource))
		}
		for _, x := range rep.Acknowledged {
			v.acknowledged = append(v.acknowledged, verdictKey(x.Rule, x.Severity == review.SeverityError, x.Resource))
		}
		slices.Sort(v.active)
		slices.Sort(v.acknowledged)
		direct[f] = v
		nested[f] = rep.Stacks
	}

	// The guard, on each template in a CDK app of its own: the template's resources as CDK L1
	// constructs, or, when CDK rejects one of them, kept as they are written (CfnInclude's
	// DehydratedResources), with the reason logged.
	var compared, dehydrated, skipped []string
	findings := 0
	for _, f := range files {
		base := filepath.Base(filepath.Dir(f)) + "/" + filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			if rerr, ok := rejected[f]; ok {
				// A template the review rejects must not pass the guard either.
				if _, err := guardVerdict(t, f, nil, false); err == nil {
					t.Fatalf("the review rejects %s (%v) but the guard accepts it", f, rerr)
				}
				t.Skipf("the review rejects it, and so does the guard: %v", rerr)
			}
			g, err := guardVerdict(t, f, nested[f], false)
			if err != nil {
				hydratedErr := err
				g, err = guardVerdict(t, f, nested[f], true)
				if err != nil {
					why := fmt.Sprintf("as L1 constructs: %v; with every resource dehydrated: %v", hydratedErr, err)
					if want, listed := cannotImport[base]; !listed || !strings.Contains(why, want) {
						t.Fatalf("CfnInclude cannot import %s: %s\nif this is a CfnInclude limitation, list it in cannotImport with the reason", f, why)
					}
					skipped = append(skipped, base)
					t.Skipf("CfnInclude cannot import it: %s", why)
				}
				t.Logf("imported with its resources dehydrated: as L1 constructs, %v", firstLineOf(hydratedErr.Error()))
				dehydrated = append(dehydrated, base)
			}
			if _, listed := cannotImport[base]; listed {
				t.Errorf("%s is listed in cannotImport but CfnInclude imports it: remove it from the list", base)
			}
			if d := direct[f]; !slices.Equal(g.active, d.active) || !slices.Equal(g.acknowledged, d.acknowledged) {
				t.Errorf("different verdicts on %s\nguard:  %v\nreview: %v", f, g, d)
			}
			compared = append(compared, base)
			findings += len(g.active) + len(g.acknowledged)
		})
	}
	t.Logf("%d templates compared, %d findings alike (%d templates dehydrated: %s), %d skipped (%s)",
		len(compared), findings, len(dehydrated), strings.Join(dehydrated, ", "), len(skipped), strings.Join(skipped, ", "))
	if findings < len(compared) {
		t.Errorf("only %d findings over %d templates: the comparison says little", findings, len(compared))
	}
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// guardVerdict imports file into a stack of a new app with CfnInclude, synthesizes it and returns
// the guard's verdict; with dehydrate, every resource but the nested stacks is kept as written.
func guardVerdict(t *testing.T, file string, stacks []review.StackInfo, dehydrate bool) (v verdict, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &map[string]any{
		// As the CDK CLI sets it: nested stack templates are found through aws:asset:path.
		"aws:cdk:enable-asset-metadata": true,
		// No AWS::CDK::Metadata resource, no BootstrapVersion parameter: nothing CfnInclude adds
		// to what the template says.
		"aws:cdk:version-reporting": false,
	}})
	stack := awscdk.NewStack(app, jsii.String("T"), &awscdk.StackProps{
		Synthesizer: awscdk.NewDefaultStackSynthesizer(&awscdk.DefaultStackSynthesizerProps{GenerateBootstrapVersionRule: jsii.Bool(false)}),
	})
	root := ""
	for _, st := range stacks {
		if st.Parent == "" {
			root = st.Name
		}
	}
	props, err := includeProps(filepath.Dir(file), file, root, stacks, dehydrate)
	if err != nil {
		return v, err
	}
	preserveDehydratedIDs(cloudformationinclude.NewCfnInclude(stack, jsii.String("Template"), props), props)
	res, err := guard.Check(*app.Synth(nil).Directory())
	if err != nil {
		return v, err
	}
	for _, x := range res.Findings {
		v.active = append(v.active, verdictKey(x.Rule, x.Error, x.LogicalID))
	}
	for _, x := range res.Acknowledged {
		v.acknowledged = append(v.acknowledged, verdictKey(x.Rule, x.Error, x.LogicalID))
	}
	slices.Sort(v.active)
	slices.Sort(v.acknowledged)
	return v, nil
}

// includeProps are the CfnInclude props of file, whose stack the review named stackName, with
// LoadNestedStacks for every nested stack the review read from a local file (relative to dir,
// the directory of the reviewed file); with dehydrate, DehydratedResources lists every other
// resource.
func includeProps(dir, file, stackName string, stacks []review.StackInfo, dehydrate bool) (*cloudformationinclude.CfnIncludeProps, error) {
	props := &cloudformationinclude.CfnIncludeProps{TemplateFile: jsii.String(file)}
	children := map[string]*cloudformationinclude.CfnIncludeProps{}
	for _, st := range stacks {
		if st.Parent != stackName || st.Parent == "" {
			continue
		}
		lid := strings.TrimPrefix(st.Name, st.Parent+"/")
		child, err := includeProps(dir, filepath.Join(dir, filepath.FromSlash(st.File)), st.Name, stacks, dehydrate)
		if err != nil {
			return nil, err
		}
		children[lid] = child
	}
	if len(children) > 0 {
		props.LoadNestedStacks = &children
	}
	if dehydrate {
		ids, err := resourceIDs(file)
		if err != nil {
			return nil, err
		}
		var list []*string
		for _, id := range ids {
			if _, isNested := children[id]; !isNested {
				list = append(list, jsii.String(id))
			}
		}
		props.DehydratedResources = &list
	}
	return props, nil
}

// preserveDehydratedIDs gives the dehydrated resources of inc (and of its nested stacks) their
// logical ids from the template: CfnInclude preserves the ids of the resources it converts to
// L1 constructs, but names the dehydrated ones after their construct path ("TemplateRoleA1B2C3D4").
func preserveDehydratedIDs(inc cloudformationinclude.CfnInclude, props *cloudformationinclude.CfnIncludeProps) {
	if props.DehydratedResources != nil {
		for _, id := range *props.DehydratedResources {
			inc.GetResource(id).OverrideLogicalId(id)
		}
	}
	if props.LoadNestedStacks != nil {
		for id, child := range *props.LoadNestedStacks {
			preserveDehydratedIDs(inc.GetNestedStack(jsii.String(id)).IncludedTemplate, child)
		}
	}
}

// resourceIDs lists the logical ids of the Resources section of a JSON or YAML template (YAML
// short forms such as !Ref are tags, which the node tree keeps without interpreting them).
func resourceIDs(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a mapping", file)
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value == "Resources" && top[i+1].Kind == yaml.MappingNode {
			var ids []string
			for j := 0; j+1 < len(top[i+1].Content); j += 2 {
				ids = append(ids, top[i+1].Content[j].Value)
			}
			return ids, nil
		}
	}
	return nil, fmt.Errorf("%s: no Resources", file)
}

// TestOurOwnAppPassesTheGuard synthesizes the Defenders app as main.go does and runs the guard on
// it: no error and no warning; Matt's unlocked role is the one acknowledged finding (DEF-LOCK-1,
// lock.Exempt), shown with its reason and construct path.
func TestOurOwnAppPassesTheGuard(t *testing.T) {
	s := synth(t, pinned, nil)
	res, err := guard.Check(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res.Print(&out)
	if len(res.Findings) > 0 || res.Err() != nil {
		t.Errorf("our own app has guard findings:\n%s", out.String())
	}
	if len(res.Acknowledged) != 1 {
		t.Fatalf("want Matt's acknowledgement alone, got:\n%s", out.String())
	}
	a := res.Acknowledged[0]
	if a.Rule != review.RuleUnlockedRole || !strings.HasPrefix(a.Path, "matt/") || !strings.Contains(a.Reason, "Matt is the deliberate control") {
		t.Errorf("acknowledgement = %+v", a)
	}
	if res.Stacks < 3 {
		t.Errorf("only %d stacks reviewed", res.Stacks)
	}
	t.Logf("\n%s", strings.ReplaceAll(out.String(), s.Dir, "cdk.out"))
}
