package review

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Assembly is the set of CloudFormation templates read from a cloud assembly
// directory (cdk.out) or from a single template file.
type Assembly struct {
	// Path is the directory or template file the assembly was loaded from.
	Path string
	// Stacks holds every stack, nested stacks and stacks of nested
	// assemblies (stages) included, sorted by name.
	Stacks []*Stack
}

// Stack is one CloudFormation template of an assembly.
type Stack struct {
	// Name is the stack's display name: the artifact's display name or id,
	// "<parent>/<logical id>" for a nested stack, or the file name without
	// ".template.json" for a single template file.
	Name string
	// StackName is the CloudFormation stack name (what AWS::StackName
	// resolves to), when the manifest says so; otherwise Name.
	StackName string
	// File is the template's path relative to Assembly.Path (slash
	// separated), or the file itself for a single template.
	File string
	// Environment is the artifact's environment (aws://account/region), if
	// known; nested stacks inherit their parent's.
	Environment string
	// Parent is the name of the parent stack of a nested stack, else "".
	Parent string

	// parent and parentRes link a nested stack to its parent stack and the
	// AWS::CloudFormation::Stack resource that creates it.
	parent    *Stack
	parentRes *resource
	// resources by logical id; params and outputs are the template's
	// Parameters and Outputs sections.
	resources map[string]*resource
	params    map[string]any
	outputs   map[string]any
}

// resource is one entry of a template's Resources section.
type resource struct {
	st    *Stack
	id    string
	typ   string
	props map[string]any
	meta  map[string]any
	// childStack is the stack an AWS::CloudFormation::Stack resource
	// creates, when its template is in the assembly.
	childStack *Stack
}

// maxDepth bounds the nesting of assemblies and nested stacks, so that a
// cyclic assembly fails with an error instead of recursing forever.
const maxDepth = 16

// ManifestFile is the name of a cloud assembly's manifest.
const ManifestFile = "manifest.json"

// Stack artifact and resource types the loader follows.
const (
	artifactStack    = "aws:cloudformation:stack"
	artifactAssembly = "cdk:cloud-assembly"
	typeNestedStack  = "AWS::CloudFormation::Stack"
	metaAssetPath    = "aws:asset:path"
)

// Load reads a cloud assembly directory (its manifest.json, every stack
// template, nested stacks and nested assemblies) or a single JSON template
// file. Errors name the file, and for malformed resources the resource.
func Load(path string) (*Assembly, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("review: %s does not exist; run `cdk synth` first or pass the cloud assembly directory or a template file: %w", path, err)
		}
		return nil, fmt.Errorf("review: stat %s: %w", path, err)
	}
	l := &loader{root: path, names: map[string]int{}, readFile: os.ReadFile}
	if fi.IsDir() {
		if err := l.assembly(path, "", "", 0); err != nil {
			return nil, err
		}
	} else {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		name = strings.TrimSuffix(name, ".template")
		l.root = filepath.Dir(path)
		if _, err := l.stack(path, name, name, "", nil, nil, 0); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(l.stacks, func(a, b *Stack) int { return strings.Compare(a.Name, b.Name) })
	return &Assembly{Path: path, Stacks: l.stacks}, nil
}

// loader accumulates the stacks of one Load call.
type loader struct {
	root     string
	stacks   []*Stack
	names    map[string]int
	readFile func(string) ([]byte, error)
	// loading holds the manifests and templates on the current recursion
	// path, to report cycles instead of recursing through them.
	loading map[string]bool
}

// enter marks file as being loaded; it fails if file is already on the
// recursion path (an assembly or nested stack that includes itself).
func (l *loader) enter(file string) error {
	key := filepath.Clean(file)
	if l.loading == nil {
		l.loading = map[string]bool{}
	}
	if l.loading[key] {
		return fmt.Errorf("review: %s includes itself (a cycle of nested stacks or assemblies)", filepath.ToSlash(file))
	}
	l.loading[key] = true
	return nil
}

// leave unmarks file.
func (l *loader) leave(file string) { delete(l.loading, filepath.Clean(file)) }

// artifactProps holds the artifact properties the loader needs.
type artifactProps struct {
	TemplateFile  string `json:"templateFile"`
	StackName     string `json:"stackName"`
	DirectoryName string `json:"directoryName"`
	DisplayName   string `json:"displayName"`
}

// artifact is one entry of manifest.json's artifacts.
type artifact struct {
	Type        string        `json:"type"`
	Environment string        `json:"environment"`
	DisplayName string        `json:"displayName"`
	Properties  artifactProps `json:"properties"`
}

// assembly loads the manifest in dir and everything it points to. prefix is
// prepended to artifact ids that have no display name (stages).
func (l *loader) assembly(dir, prefix, env string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("review: %s: nested assemblies deeper than %d levels (cycle?)", dir, maxDepth)
	}
	file := filepath.Join(dir, ManifestFile)
	if err := l.enter(file); err != nil {
		return err
	}
	defer l.leave(file)
	b, err := l.readFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("review: read manifest: %s is not a cloud assembly (no %s); run `cdk synth` or pass a template file: %w", dir, ManifestFile, err)
		}
		return fmt.Errorf("review: read manifest: %w", err)
	}
	var m struct {
		Artifacts map[string]json.RawMessage `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("review: parse manifest %s: %s", file, describeJSONError(b, err))
	}
	ids := make([]string, 0, len(m.Artifacts))
	for id := range m.Artifacts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var a artifact
		if err := json.Unmarshal(m.Artifacts[id], &a); err != nil {
			return fmt.Errorf("review: parse manifest %s: artifact %q: %s", file, id, describeJSONError(m.Artifacts[id], err))
		}
		switch a.Type {
		case artifactStack:
			if a.Properties.TemplateFile == "" {
				return fmt.Errorf("review: parse manifest %s: artifact %q (%s) has no properties.templateFile", file, id, a.Type)
			}
			name := a.DisplayName
			if name == "" {
				name = prefix + id
			}
			cfnName := a.Properties.StackName
			if cfnName == "" {
				cfnName = id
			}
			e := a.Environment
			if e == "" {
				e = env
			}
			if _, err := l.stack(filepath.Join(dir, a.Properties.TemplateFile), name, cfnName, e, nil, nil, depth); err != nil {
				return err
			}
		case artifactAssembly:
			if a.Properties.DirectoryName == "" {
				return fmt.Errorf("review: parse manifest %s: artifact %q (%s) has no properties.directoryName", file, id, a.Type)
			}
			display := a.Properties.DisplayName
			if display == "" {
				display = a.DisplayName
			}
			if display == "" {
				display = id
			}
			if err := l.assembly(filepath.Join(dir, a.Properties.DirectoryName), display+"/", env, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// stack reads and validates one template, registers it, and loads the
// nested stacks it declares.
func (l *loader) stack(file, name, cfnName, env string, parent *Stack, parentRes *resource, depth int) (*Stack, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("review: %s: nested stacks deeper than %d levels (cycle?)", file, maxDepth)
	}
	if err := l.enter(file); err != nil {
		return nil, err
	}
	defer l.leave(file)
	rel := l.rel(file)
	shown := filepath.ToSlash(file) // errors name the file as the user can open it
	b, err := l.readFile(file)
	if err != nil {
		return nil, fmt.Errorf("review: read template %s: %w", shown, err)
	}
	ext := strings.ToLower(filepath.Ext(file))
	if ext == ".yaml" || ext == ".yml" {
		return nil, fmt.Errorf("review: read template %s: YAML templates are not supported; synthesize JSON (cdk synth writes JSON to cdk.out)", shown)
	}
	tmpl, err := decodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("review: parse template %s: %w", shown, err)
	}
	obj, ok := tmpl.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("review: parse template %s: want a JSON object, got %s", shown, kindOf(tmpl))
	}
	if _, ok := obj["artifacts"]; ok && filepath.Base(file) == ManifestFile {
		return nil, fmt.Errorf("review: parse template %s: this is a cloud assembly manifest; pass its directory instead", shown)
	}
	if n := l.names[name]; n > 0 {
		l.names[name] = n + 1
		name = fmt.Sprintf("%s#%d", name, n+1)
	} else {
		l.names[name] = 1
	}
	st := &Stack{Name: name, StackName: cfnName, File: rel, Environment: env, parent: parent, parentRes: parentRes}
	if parent != nil {
		st.Parent = parent.Name
	}
	if err := st.index(obj, shown); err != nil {
		return nil, err
	}
	l.stacks = append(l.stacks, st)
	for _, id := range sortedKeys(st.resources) {
		r := st.resources[id]
		if r.typ != typeNestedStack {
			continue
		}
		asset, ok := r.meta[metaAssetPath].(string)
		if !ok || asset == "" {
			continue // a TemplateURL outside the assembly: nothing to read
		}
		child, err := l.stack(filepath.Join(filepath.Dir(file), asset), nestedName(st, r), st.StackName+"-"+id, env, st, r, depth+1)
		if err != nil {
			return nil, err
		}
		r.childStack = child
	}
	return st, nil
}

// nestedName names the nested stack created by r in st: the construct
// path of a CDK NestedStack ("platform/compute"), else "<parent>/<logical id>".
func nestedName(st *Stack, r *resource) string {
	p, _ := r.meta["aws:cdk:path"].(string)
	if dir, last, ok := strings.Cut(p, ".NestedStack/"); ok && strings.HasSuffix(last, ".NestedStackResource") && dir != "" {
		return dir
	}
	return st.Name + "/" + r.id
}

// rel renders file relative to the loader's root, slash separated.
func (l *loader) rel(file string) string {
	if r, err := filepath.Rel(l.root, file); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(file)
}

// index validates the template (file names it in errors) and fills the
// stack's lookup tables.
func (st *Stack) index(tmpl map[string]any, file string) error {
	v := &validator{file: file}
	resources, ok := tmpl["Resources"]
	if !ok {
		return fmt.Errorf("review: template %s: no Resources section; is this a CloudFormation template?", file)
	}
	rm, ok := resources.(map[string]any)
	if !ok {
		return fmt.Errorf("review: template %s: Resources: want an object, got %s", file, kindOf(resources))
	}
	st.resources = make(map[string]*resource, len(rm))
	for _, id := range sortedKeys(rm) {
		if r := v.resource(st, id, rm[id]); r != nil {
			st.resources[id] = r
		}
	}
	st.params = v.section(tmpl, "Parameters")
	st.outputs = v.section(tmpl, "Outputs")
	return v.err()
}

// decodeJSON parses one JSON value, keeping numbers as json.Number, and
// reports syntax errors with a line and column.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New(describeJSONError(b, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// describeJSONError turns a decoding error into a message with a line and
// column when the error carries an offset.
func describeJSONError(b []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end of file"
	}
	if off < 0 || off > int64(len(b)) {
		return "invalid JSON: " + err.Error()
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:off], '\n')
	return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, err)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
