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
	"regexp"
	"slices"
	"strings"
)

// Assembly is the set of CloudFormation templates read from a cloud
// assembly directory (cdk.out), a directory of templates or a single
// template file.
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
	// its extension (".template.json", ".yaml"...) for a template file.
	Name string
	// StackName is the CloudFormation stack name (what AWS::StackName
	// resolves to), when the manifest says so; otherwise Name.
	StackName string
	// File is the template's path relative to the input directory (slash
	// separated), or the file's name for a single template.
	File string
	// Environment is the artifact's environment (aws://account/region), if
	// known; nested stacks inherit their parent's.
	Environment string
	// Parent is the name of the parent stack of a nested stack, else "".
	// A template nested by several stack resources is loaded once, under
	// the first parent that names it.
	Parent string

	// parent and parentRes link a nested stack to its parent stack and the
	// AWS::CloudFormation::Stack resource that creates it. parentRes is nil
	// when several stack resources nest the same template: its parameters
	// then take whatever values they can take on their own (default,
	// AllowedValues...), not what one of its parents passes.
	parent    *Stack
	parentRes *resource
	// resources by logical id; params and outputs are the template's
	// Parameters and Outputs sections.
	resources map[string]*resource
	params    map[string]any
	outputs   map[string]any
	// conditions and mappings are the template's Conditions and Mappings
	// sections (read by the value evaluator, eval.go).
	conditions map[string]any
	mappings   map[string]any
}

// resource is one entry of a template's Resources section.
type resource struct {
	st    *Stack
	id    string
	typ   string
	props map[string]any
	meta  map[string]any
	// cond is the resource's Condition attribute (the name of the
	// condition under which it is created), or "".
	cond string
	// childStack is the stack an AWS::CloudFormation::Stack resource
	// creates, when its template is in the input.
	childStack *Stack
	// unreviewed says why the template of an AWS::CloudFormation::Stack
	// resource could not be read (a TemplateURL that is not a local file,
	// a file that does not exist); Analyze reports it (DEF-TPL-1).
	unreviewed string
}

// maxDepth bounds the nesting of assemblies and nested stacks, so that a
// cyclic assembly fails with an error instead of recursing forever.
const maxDepth = 16

// Size limits of what Load reads. A larger file is an error, so that no
// input makes the review read without bound.
const (
	// MaxTemplateSize is the largest template Load reads: CloudFormation's
	// own limit for a template stored in S3 (1 MB).
	MaxTemplateSize = 1 << 20
	// maxManifestSize bounds a cloud assembly's manifest.json, which grows
	// with the app (CDK records metadata for every construct in it).
	maxManifestSize = 64 << 20
)

// ManifestFile is the name of a cloud assembly's manifest.
const ManifestFile = "manifest.json"

// Stack artifact and resource types the loader follows.
const (
	artifactStack    = "aws:cloudformation:stack"
	artifactAssembly = "cdk:cloud-assembly"
	typeNestedStack  = "AWS::CloudFormation::Stack"
	metaAssetPath    = "aws:asset:path"
)

// templateExts are the file extensions Load takes for templates in a
// directory (compared without case).
var templateExts = []string{".json", ".yaml", ".yml", ".template"}

// Load reads what a review covers, and every nested stack it can find:
//
//   - a cloud assembly directory (cdk.out): its manifest.json, every stack
//     template, nested stacks and nested assemblies (stages);
//   - any other directory: every template in it (*.json, *.yaml, *.yml,
//     *.template with a Resources section; not its subdirectories, and not
//     hidden files); templates that another one nests are read as nested
//     stacks, not as stacks of their own;
//   - a template file, JSON or YAML (YAML short forms such as !Ref and
//     !GetAtt are read as their JSON form).
//
// A nested stack's template is read when the AWS::CloudFormation::Stack
// resource names a local file: CDK's aws:asset:path metadata, or a
// TemplateURL that is a relative path (as `aws cloudformation package`
// takes). A TemplateURL that is not a local file, or a file that does not
// exist, is recorded on the resource and reported by Analyze; a template
// nested several times is read once.
//
// Load reads nothing outside the input directory (the directory of a
// template file): an absolute path, a path through "..", or a symbolic link
// that leads out is an error. So are files that are not regular files
// (FIFOs, devices), templates larger than MaxTemplateSize, cycles of nested
// stacks, and malformed templates; errors name the file, and for malformed
// resources the resource.
func Load(path string) (*Assembly, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("review: %s does not exist; run `cdk synth` first or pass the cloud assembly directory, a directory of templates or a template file: %w", path, err)
		}
		return nil, fmt.Errorf("review: stat %s: %w", path, err)
	}
	real, err := filepath.Abs(path)
	if err == nil {
		real, err = filepath.EvalSymlinks(real)
	}
	if err != nil {
		return nil, fmt.Errorf("review: resolve %s: %w", path, err)
	}
	l := &loader{names: map[string]int{}, loading: map[string]bool{}, loaded: map[string]*Stack{}}
	switch {
	case fi.IsDir():
		l.root, l.shown = real, path
		_, err := os.Lstat(filepath.Join(real, ManifestFile))
		switch {
		case err == nil:
			err = l.assembly(real, "", "", 0)
		case errors.Is(err, fs.ErrNotExist):
			err = l.directory(real)
		default:
			err = fmt.Errorf("review: read manifest: %w", err)
		}
		if err != nil {
			return nil, err
		}
	case fi.Mode().IsRegular():
		l.root, l.shown = filepath.Dir(real), filepath.Dir(path)
		name := templateName(path)
		if _, err := l.stack(real, name, name, "", nil, nil, 0); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("review: %s is %s, not a template file or a directory", path, describeMode(fi.Mode()))
	}
	slices.SortFunc(l.stacks, func(a, b *Stack) int { return strings.Compare(a.Name, b.Name) })
	return &Assembly{Path: path, Stacks: l.stacks}, nil
}

// loader accumulates the stacks of one Load call.
type loader struct {
	// root is the input directory, absolute and with symbolic links
	// resolved: nothing outside it is read. shown is the same directory as
	// the user named it, for messages.
	root, shown string
	stacks      []*Stack
	names       map[string]int
	// loading holds the manifests and templates (resolved paths) on the
	// current recursion path, to report cycles instead of recursing through
	// them; loaded holds every template read, so that one nested many times
	// is read once.
	loading map[string]bool
	loaded  map[string]*Stack
	// parsed holds the templates a directory scan has already parsed.
	parsed map[string]map[string]any
}

// errOutside marks a path that leads outside the input.
var errOutside = errors.New("leads outside the input directory")

// show renders a resolved path inside the input as the user can open it.
func (l *loader) show(file string) string {
	if rel, err := filepath.Rel(l.root, file); err == nil && filepath.IsLocal(rel) {
		return filepath.ToSlash(filepath.Join(l.shown, rel))
	}
	return filepath.ToSlash(file)
}

// rel renders a resolved path inside the input relative to the input
// directory, slash separated.
func (l *loader) rel(file string) string {
	if r, err := filepath.Rel(l.root, file); err == nil && filepath.IsLocal(r) {
		return filepath.ToSlash(r)
	}
	return filepath.ToSlash(file)
}

// inside reports whether path is the input directory or lies in it.
func (l *loader) inside(path string) bool {
	rel, err := filepath.Rel(l.root, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// resolve turns ref, a path that a manifest or a template gives relative to
// dir (a resolved directory of the input), into a resolved path inside the
// input. An absolute path, a path that leaves the input and a symbolic link
// that points out of it wrap errOutside; a missing file wraps
// fs.ErrNotExist.
func (l *loader) resolve(dir, ref string) (string, error) {
	if ref == "" {
		return "", errors.New("empty path")
	}
	native := filepath.FromSlash(ref)
	if filepath.IsAbs(native) || filepath.VolumeName(native) != "" || strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, `\`) {
		return "", fmt.Errorf("%q is an absolute path (want a path relative to the file that names it): %w", ref, errOutside)
	}
	p := filepath.Join(dir, native)
	if !l.inside(p) {
		return "", fmt.Errorf("%q %w %s", ref, errOutside, l.shown)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if !l.inside(real) {
		return "", fmt.Errorf("%q is a symbolic link that %w %s", ref, errOutside, l.shown)
	}
	return real, nil
}

// describeMode names a file type for an error message.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// readRegular reads file, a resolved path, when it is a regular file of at
// most limit bytes. The file's type is checked before it is opened (opening
// a FIFO blocks until someone writes to it) and again on the open file, in
// case it was replaced in between; the read itself is bounded too.
func readRegular(file string, limit int64) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(fi, limit); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := checkRegular(fi, limit); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(int64(len(b)), limit)
	}
	return b, nil
}

// checkRegular fails unless fi is a regular file of at most limit bytes.
func checkRegular(fi fs.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s, not a regular file; the review reads only regular files", describeMode(fi.Mode()))
	}
	if fi.Size() > limit {
		return tooLarge(fi.Size(), limit)
	}
	return nil
}

// errTooLarge marks a file over its size limit.
var errTooLarge = errors.New("file too large")

// tooLarge describes a file of size bytes (or more) over its limit.
func tooLarge(size, limit int64) error {
	if limit == MaxTemplateSize {
		return fmt.Errorf("%w: %d bytes or more, over %d (1 MB, CloudFormation's own limit for a template in S3)", errTooLarge, size, limit)
	}
	return fmt.Errorf("%w: %d bytes or more, over %d", errTooLarge, size, limit)
}

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

// assembly loads the manifest in dir (a resolved directory of the input)
// and everything it points to. prefix is prepended to artifact ids that
// have no display name (stages).
func (l *loader) assembly(dir, prefix, env string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("review: %s: nested assemblies deeper than %d levels (cycle?)", l.show(dir), maxDepth)
	}
	shown := l.show(filepath.Join(dir, ManifestFile))
	file, err := l.resolve(dir, ManifestFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("review: read manifest: %s is not a cloud assembly (no %s); run `cdk synth` or pass a template file: %w", l.show(dir), ManifestFile, err)
		}
		return fmt.Errorf("review: read manifest %s: %w", shown, err)
	}
	if l.loading[file] {
		return fmt.Errorf("review: %s includes itself (a cycle of nested assemblies)", shown)
	}
	l.loading[file] = true
	defer delete(l.loading, file)
	b, err := readRegular(file, maxManifestSize)
	if err != nil {
		return fmt.Errorf("review: read manifest %s: %w", shown, err)
	}
	var m struct {
		Version   *string                    `json:"version"`
		Artifacts map[string]json.RawMessage `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("review: parse manifest %s: %s", shown, describeJSONError(b, err))
	}
	if m.Version == nil && m.Artifacts == nil {
		// Not CDK's: reviewing it would report "no findings" on nothing.
		return fmt.Errorf("review: parse manifest %s: neither version nor artifacts; is this a cloud assembly?", shown)
	}
	ids := make([]string, 0, len(m.Artifacts))
	for id := range m.Artifacts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var a artifact
		if err := json.Unmarshal(m.Artifacts[id], &a); err != nil {
			return fmt.Errorf("review: parse manifest %s: artifact %q: %s", shown, id, describeJSONError(m.Artifacts[id], err))
		}
		switch a.Type {
		case artifactStack:
			if a.Properties.TemplateFile == "" {
				return fmt.Errorf("review: parse manifest %s: artifact %q (%s) has no properties.templateFile", shown, id, a.Type)
			}
			tmpl, err := l.resolve(dir, a.Properties.TemplateFile)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("review: read template %s (artifact %q of %s): it does not exist: %w",
						l.show(filepath.Join(dir, filepath.FromSlash(a.Properties.TemplateFile))), id, shown, err)
				}
				return fmt.Errorf("review: read template of artifact %q of %s: templateFile %w", id, shown, err)
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
			if _, err := l.stack(tmpl, name, cfnName, e, nil, nil, depth); err != nil {
				return err
			}
		case artifactAssembly:
			if a.Properties.DirectoryName == "" {
				return fmt.Errorf("review: parse manifest %s: artifact %q (%s) has no properties.directoryName", shown, id, a.Type)
			}
			sub, err := l.resolve(dir, a.Properties.DirectoryName)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("review: read manifest: %s (artifact %q in %s) does not exist: %w", a.Properties.DirectoryName, id, shown, err)
				}
				return fmt.Errorf("review: read nested assembly of artifact %q of %s: directoryName %w", id, shown, err)
			}
			display := a.Properties.DisplayName
			if display == "" {
				display = a.DisplayName
			}
			if display == "" {
				display = id
			}
			if err := l.assembly(sub, display+"/", env, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// directory loads every template of dir (a resolved directory, not a cloud
// assembly), not recursively. Files that do not parse as a template with a
// Resources or AWSTemplateFormatVersion section are skipped (package.json,
// buildspec.yml...), unless they look like a template (then the error is
// reported: a broken template must not pass as "no findings"). Templates
// that another template of the input nests are loaded as nested stacks.
func (l *loader) directory(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("review: read directory %s: %w", l.shown, err)
	}
	l.parsed = map[string]map[string]any{}
	var files []string // resolved paths of the templates, in name order
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !hasTemplateExt(name) {
			continue
		}
		file, err := l.resolve(dir, name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a dangling symbolic link
			}
			return fmt.Errorf("review: read template %s: %w", l.show(filepath.Join(dir, name)), err)
		}
		fi, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("review: read template %s: %w", l.show(file), err)
		}
		if fi.IsDir() {
			continue // not recursive
		}
		b, err := readRegular(file, MaxTemplateSize)
		if err != nil {
			if errors.Is(err, errTooLarge) && !looksLikeTemplate(peek(file)) {
				continue // a large file that is no template (package-lock.json)
			}
			return fmt.Errorf("review: read template %s: %w", l.show(file), err)
		}
		v, err := decodeTemplate(b, file)
		if err != nil {
			if !looksLikeTemplate(b) {
				continue
			}
			return fmt.Errorf("review: parse template %s: %w", l.show(file), err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			continue
		}
		_, hasRes := obj["Resources"]
		_, hasVer := obj["AWSTemplateFormatVersion"]
		if !hasRes && !hasVer {
			continue
		}
		if _, dup := l.parsed[file]; dup {
			continue // two names (links) for one file
		}
		l.parsed[file] = obj
		files = append(files, file)
	}
	if len(files) == 0 {
		return fmt.Errorf("review: %s is not a cloud assembly (no %s) and holds no CloudFormation template (*.json, *.yaml, *.yml or *.template with a Resources section); run `cdk synth` or pass a template file", l.shown, ManifestFile)
	}
	// Templates nested by another template of the input are not roots.
	nested := map[string]bool{}
	for _, file := range files {
		res, _ := l.parsed[file]["Resources"].(map[string]any)
		for _, id := range sortedKeys(res) {
			r, _ := res[id].(map[string]any)
			if typ, _ := r["Type"].(string); typ != typeNestedStack {
				continue
			}
			props, _ := r["Properties"].(map[string]any)
			meta, _ := r["Metadata"].(map[string]any)
			if ref, why := nestedRef(props, meta); why == "" {
				if child, err := l.resolve(filepath.Dir(file), ref); err == nil && child != file {
					nested[child] = true
				}
			}
		}
	}
	// Roots first, so that nested templates are loaded under their parent;
	// then whatever is left: templates nested only by nested templates, a
	// cycle that stack reports.
	for _, pass := range []func(string) bool{
		func(file string) bool { return !nested[file] },
		func(string) bool { return true },
	} {
		for _, file := range files {
			if !pass(file) || l.loaded[file] != nil {
				continue
			}
			name := templateName(file)
			if _, err := l.stack(file, name, name, "", nil, nil, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// hasTemplateExt reports whether name has one of templateExts.
func hasTemplateExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return slices.Contains(templateExts, ext)
}

// templateName is the stack name of a template file: its name without
// ".template.json", ".json", ".yaml", ".yml" or ".template".
func templateName(file string) string {
	base := filepath.Base(file)
	if hasTemplateExt(base) {
		base = base[:len(base)-len(filepath.Ext(base))]
	}
	if n := strings.TrimSuffix(base, ".template"); n != "" {
		base = n
	}
	return base
}

// templateKey matches the start of a Resources key, in JSON or YAML.
var templateKey = regexp.MustCompile(`"Resources"\s*:|(?m)^Resources\s*:|AWSTemplateFormatVersion`)

// looksLikeTemplate reports whether b could be a CloudFormation template:
// every template has a Resources section.
func looksLikeTemplate(b []byte) bool { return templateKey.Match(b) }

// peek returns the first MaxTemplateSize bytes of a regular file, or nil.
func peek(file string) []byte {
	fi, err := os.Stat(file)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.OpenFile(file, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, MaxTemplateSize))
	return b
}

// parse reads and decodes the template at file (a resolved path), once.
func (l *loader) parse(file string) (map[string]any, error) {
	if tmpl, ok := l.parsed[file]; ok {
		return tmpl, nil
	}
	shown := l.show(file)
	b, err := readRegular(file, MaxTemplateSize)
	if err != nil {
		return nil, fmt.Errorf("review: read template %s: %w", shown, err)
	}
	v, err := decodeTemplate(b, file)
	if err != nil {
		return nil, fmt.Errorf("review: parse template %s: %w", shown, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("review: parse template %s: want an object, got %s", shown, kindOf(v))
	}
	if l.parsed == nil {
		l.parsed = map[string]map[string]any{}
	}
	l.parsed[file] = obj
	return obj, nil
}

// stack reads and validates the template at file (a resolved path inside
// the input), registers it, and loads the nested stacks it declares. A
// template already loaded is returned as is: a template nested many times
// is read and walked once.
func (l *loader) stack(file, name, cfnName, env string, parent *Stack, parentRes *resource, depth int) (*Stack, error) {
	if l.loading[file] {
		return nil, fmt.Errorf("review: %s includes itself (a cycle of nested stacks)", l.show(file))
	}
	if st, ok := l.loaded[file]; ok {
		if parentRes != nil && st.parentRes != parentRes {
			st.parentRes = nil // nested more than once: no single parent passes its parameters
		}
		return st, nil
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("review: %s: nested stacks deeper than %d levels", l.show(file), maxDepth)
	}
	l.loading[file] = true
	defer delete(l.loading, file)
	tmpl, err := l.parse(file)
	if err != nil {
		return nil, err
	}
	return l.build(file, tmpl, name, cfnName, env, parent, parentRes, depth)
}

// build registers the stack of tmpl, read from file, and loads the nested
// stacks it declares.
func (l *loader) build(file string, tmpl map[string]any, name, cfnName, env string, parent *Stack, parentRes *resource, depth int) (*Stack, error) {
	shown := l.show(file) // errors name the file as the user can open it
	if _, ok := tmpl["artifacts"]; ok && filepath.Base(file) == ManifestFile {
		return nil, fmt.Errorf("review: parse template %s: this is a cloud assembly manifest; pass its directory instead", shown)
	}
	if n := l.names[name]; n > 0 {
		l.names[name] = n + 1
		name = fmt.Sprintf("%s#%d", name, n+1)
	} else {
		l.names[name] = 1
	}
	st := &Stack{Name: name, StackName: cfnName, File: l.rel(file), Environment: env, parent: parent, parentRes: parentRes}
	if parent != nil {
		st.Parent = parent.Name
	}
	if err := st.index(tmpl, shown); err != nil {
		return nil, err
	}
	l.stacks = append(l.stacks, st)
	l.loaded[file] = st
	for _, id := range sortedKeys(st.resources) {
		r := st.resources[id]
		if r.typ != typeNestedStack {
			continue
		}
		ref, why := nestedRef(r.props, r.meta)
		if why != "" {
			r.unreviewed = why
			continue
		}
		childFile, err := l.resolve(filepath.Dir(file), ref)
		if errors.Is(err, fs.ErrNotExist) {
			r.unreviewed = fmt.Sprintf("its template `%s` does not exist", ref)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("review: template %s: resource %s (%s): read nested template: %w", shown, id, r.typ, err)
		}
		child, err := l.stack(childFile, nestedName(st, r), st.StackName+"-"+id, env, st, r, depth+1)
		if err != nil {
			return nil, err
		}
		r.childStack = child
	}
	return st, nil
}

// nestedRef says where the template of an AWS::CloudFormation::Stack
// resource is: a path relative to the parent template (CDK's
// aws:asset:path metadata, or a TemplateURL that is a relative file path,
// as `aws cloudformation package` takes), or why it cannot be read.
func nestedRef(props, meta map[string]any) (ref, why string) {
	if p, ok := meta[metaAssetPath].(string); ok && p != "" {
		return p, ""
	}
	u, ok := props["TemplateURL"]
	if !ok {
		return "", "it has no TemplateURL"
	}
	s, ok := u.(string)
	switch {
	case !ok:
		return "", fmt.Sprintf("its TemplateURL `%s` is computed, not a local file", Render(u))
	case s == "":
		return "", "its TemplateURL is empty"
	case strings.Contains(s, "://") || strings.HasPrefix(strings.ToLower(s), "s3:"):
		return "", fmt.Sprintf("its TemplateURL `%s` is not a local file", s)
	}
	return s, ""
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
	st.conditions = v.section(tmpl, "Conditions")
	st.mappings = v.section(tmpl, "Mappings")
	return v.err()
}

// utf8BOM is the byte order mark some editors put at the start of a file.
var utf8BOM = []byte("\xef\xbb\xbf")

// decodeTemplate parses a template: JSON when file ends in .json, YAML
// (CloudFormation's dialect, see decodeYAML) otherwise, except that a file
// that starts with "{" is tried as JSON first.
func decodeTemplate(b []byte, file string) (any, error) {
	b = bytes.TrimPrefix(b, utf8BOM)
	ext := strings.ToLower(filepath.Ext(file))
	if ext == ".json" {
		return decodeJSON(b)
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		v, jerr := decodeJSON(b)
		if jerr == nil {
			return v, nil
		}
		v, yerr := decodeYAML(b)
		if yerr == nil {
			return v, nil
		}
		if ext == ".yaml" || ext == ".yml" {
			return nil, yerr
		}
		return nil, jerr
	}
	return decodeYAML(b)
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
