package guard

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/review"
)

// pathIndex maps the resources of a cloud assembly to their construct paths, from the
// aws:cdk:logicalId metadata CDK writes for every CfnElement (in manifest.json, or since cloud
// assembly schema 55 in the file a stack artifact names as additionalMetadataFile).
type pathIndex struct {
	// byTemplate holds, per top-level stack template (slash-separated, relative to the assembly
	// directory), the construct paths of its artifact: nested stacks' resources included.
	byTemplate map[string]*artifactPaths
}

// artifactPaths are the construct paths of one stack artifact.
type artifactPaths struct {
	// byID lists the construct paths (without the leading "/") of each logical id.
	byID map[string][]string
	// nested are the construct paths of the nested stacks under the artifact.
	nested []string
}

// Limits on what readPaths reads: review.Load has already read the same assembly under its own
// limits, these only keep a hostile directory from costing more here.
const (
	maxMetadataFile = 64 << 20
	maxAssemblyNest = 16
)

// readPaths indexes the cloud assembly in dir and its nested assemblies (stages). A directory
// without a manifest (a directory of templates) gives an empty index.
func readPaths(dir string) (*pathIndex, error) {
	ix := &pathIndex{byTemplate: map[string]*artifactPaths{}}
	if _, err := os.Stat(filepath.Join(dir, review.ManifestFile)); err != nil {
		return ix, nil
	}
	return ix, ix.read(dir, "", 0)
}

// read indexes the manifest of the assembly in dir/sub (sub is slash-separated, "" for the root).
func (ix *pathIndex) read(dir, sub string, depth int) error {
	if depth > maxAssemblyNest {
		return fmt.Errorf("%s: nested assemblies deeper than %d levels", path.Join(sub, review.ManifestFile), maxAssemblyNest)
	}
	var m struct {
		Artifacts map[string]struct {
			Type       string                     `json:"type"`
			Metadata   map[string][]metadataEntry `json:"metadata"`
			Additional string                     `json:"additionalMetadataFile"`
			Properties struct {
				TemplateFile  string `json:"templateFile"`
				DirectoryName string `json:"directoryName"`
			} `json:"properties"`
		} `json:"artifacts"`
	}
	if err := readJSON(dir, path.Join(sub, review.ManifestFile), &m); err != nil {
		return err
	}
	for _, id := range sortedKeys(m.Artifacts) {
		a := m.Artifacts[id]
		switch a.Type {
		case "aws:cloudformation:stack":
			meta := a.Metadata
			if a.Additional != "" {
				var more map[string][]metadataEntry
				if err := readJSON(dir, path.Join(sub, a.Additional), &more); err != nil {
					return err
				}
				if meta == nil {
					meta = map[string][]metadataEntry{}
				}
				for p, es := range more {
					meta[p] = append(meta[p], es...)
				}
			}
			ix.byTemplate[path.Join(sub, a.Properties.TemplateFile)] = index(meta)
		case "cdk:cloud-assembly":
			if a.Properties.DirectoryName != "" {
				if err := ix.read(dir, path.Join(sub, a.Properties.DirectoryName), depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// metadataEntry is one metadata entry of a construct path.
type metadataEntry struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// index collects the logical ids and nested stacks of one artifact's metadata.
func index(meta map[string][]metadataEntry) *artifactPaths {
	ap := &artifactPaths{byID: map[string][]string{}}
	for _, p := range sortedKeys(meta) {
		cp := strings.TrimPrefix(p, "/")
		for _, e := range meta[p] {
			if id, ok := e.Data.(string); ok && e.Type == "aws:cdk:logicalId" {
				ap.byID[id] = append(ap.byID[id], cp)
				if n, ok := nestedStackOf(cp); ok {
					ap.nested = append(ap.nested, n)
				}
			}
		}
	}
	return ap
}

// nestedStackOf returns the construct path of the nested stack whose AWS::CloudFormation::Stack
// resource is at p: NestedStack "<scope>/<id>" puts that resource at
// "<scope>/<id>.NestedStack/<id>.NestedStackResource".
func nestedStackOf(p string) (string, bool) {
	dir, last, ok := strings.Cut(p, ".NestedStack/")
	if !ok || strings.Contains(last, "/") {
		return "", false
	}
	id := dir[strings.LastIndex(dir, "/")+1:]
	if last != id+".NestedStackResource" {
		return "", false
	}
	return dir, true
}

// owner is the construct path of the nested stack that holds p, or "" for the artifact's stack.
func (ap *artifactPaths) owner(p string) string {
	best := ""
	for _, n := range ap.nested {
		if strings.HasPrefix(p, n+"/") && len(n) > len(best) {
			best = n
		}
	}
	return best
}

// path returns the construct path of logical id in the stack named name, or "".
func (ix *pathIndex) path(stacks map[string]review.StackInfo, name, id string) string {
	ap, prefix, ok := ix.stack(stacks, name, 0)
	if !ok {
		return ""
	}
	for _, p := range ap.byID[id] {
		if ap.owner(p) == prefix {
			return p
		}
	}
	return ""
}

// stack finds the artifact of the stack named name and, for a nested stack, its construct path
// (the prefix its resources' paths start with); "" for a top-level stack.
func (ix *pathIndex) stack(stacks map[string]review.StackInfo, name string, depth int) (*artifactPaths, string, bool) {
	st, ok := stacks[name]
	if !ok || depth > maxAssemblyNest {
		return nil, "", false
	}
	if st.Parent == "" {
		ap, ok := ix.byTemplate[st.File]
		return ap, "", ok
	}
	ap, parentPrefix, ok := ix.stack(stacks, st.Parent, depth+1)
	if !ok {
		return nil, "", false
	}
	// The review names a nested stack by its construct path when the template has path
	// metadata, else "<parent>/<logical id of its AWS::CloudFormation::Stack resource>".
	if slices.Contains(ap.nested, name) {
		return ap, name, true
	}
	lid := strings.TrimPrefix(name, st.Parent+"/")
	for _, p := range ap.byID[lid] {
		if ap.owner(p) != parentPrefix {
			continue
		}
		if n, ok := nestedStackOf(p); ok {
			return ap, n, true
		}
	}
	return nil, "", false
}

// readJSON decodes the file rel (slash-separated, inside dir) into v.
func readJSON(dir, rel string, v any) error {
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return fmt.Errorf("%s: not a path inside the cloud assembly", rel)
	}
	file := filepath.Join(dir, filepath.FromSlash(rel))
	// Regular files only (a FIFO would block the open), and no symbolic links out of the assembly.
	if fi, err := os.Lstat(file); err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("read %s: not a regular file", rel)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadataFile+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	if len(b) > maxMetadataFile {
		return fmt.Errorf("read %s: larger than %d bytes", rel, maxMetadataFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", rel, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
