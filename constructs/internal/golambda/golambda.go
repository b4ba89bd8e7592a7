// Package golambda builds the Defenders Lambdas from source with a local `go build` (no Docker):
// GOOS=linux, GOARCH=arm64, CGO_ENABLED=0, -trimpath, -tags lambda.norpc, -buildvcs=false and an
// empty build id, so the same source gives the same `bootstrap` byte for byte.
//
// The build always runs in the Defenders module itself, with its own go.mod and go.sum: inside
// this repository, or, when the constructs are used from a user's module, in the directory that
// `go list -m` reports for github.com/defenders-cdk/defenders there (the module cache, or the
// target of a replace directive). Building in the user's module would need every dependency of
// our Lambdas in the user's go.sum. The user's go.work is ignored (GOWORK=off) for the same reason.
//
// The build happens in Go, before the asset is created, so that a failure is an error returned
// by Code (and then by detector.New or locker.New), never a panic inside a jsii callback. Its
// output is cached by a hash of its inputs (the Go version, the build flags, go.mod, go.sum and
// every non-test file under internal/ and lambda/, the only places a Lambda may import from):
// an unchanged Lambda is not rebuilt on the next synth.
package golambda

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3assets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// thisModule is the module that holds the bundled Lambdas.
const thisModule = "github.com/defenders-cdk/defenders"

// EnvCacheDir overrides where built bootstraps are cached (default: the user cache directory,
// e.g. ~/.cache/defenders-cdk/lambda).
const EnvCacheDir = "DEFENDERS_BUILD_CACHE"

// buildArgs are the go build flags of every shipped Lambda binary (internal/contract).
var buildArgs = contract.BuildFlags

// buildEnv is the environment of the build on top of the caller's: the Lambda platform and the
// contract's build environment (GOWORK=off: a user's workspace must not change our module graph).
var buildEnv = append(append([]string{}, contract.LambdaPlatform...), contract.BuildEnv...)

// Build compiles the package main pkg of this module for Lambda (linux/arm64) into out, in the
// module's own directory.
func Build(pkg, out string) error {
	root, rel, err := locate(pkg)
	if err != nil {
		return err
	}
	return build(root, rel, out)
}

func build(root, rel, out string) error {
	args := append([]string{"build"}, buildArgs...)
	args = append(args, "-o", out, "./"+filepath.ToSlash(rel))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), buildEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("golambda: go build %s/%s in %s: %v\n%s", thisModule, filepath.ToSlash(rel), root, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Code is Lambda code built locally from the Go package main pkg of this module (an import path
// such as github.com/defenders-cdk/defenders/lambda/detector). The asset is the directory that
// holds only `bootstrap`, so its hash is the binary's. When the stack's bundling is skipped
// (`cdk synth --exclusively` of another stack, or the context "aws:cdk:bundling-stacks"), nothing
// is built and the asset is the package source with a fixed hash, as CDK does for skipped bundling.
func Code(scope constructs.Construct, pkg string) (awslambda.Code, error) {
	root, rel, err := locate(pkg)
	if err != nil {
		return nil, err
	}
	if b := awscdk.Stack_Of(scope).BundlingRequired(); b != nil && !*b {
		return awslambda.Code_FromAsset(jsii.String(filepath.Join(root, rel)), &awss3assets.AssetOptions{
			AssetHashType: awscdk.AssetHashType_CUSTOM,
			AssetHash:     jsii.String("bundling-skipped-" + filepath.ToSlash(rel)),
		}), nil
	}
	out, err := cachedBuild(root, rel)
	if err != nil {
		return nil, err
	}
	return awslambda.Code_FromAsset(jsii.String(filepath.Dir(out)), nil), nil
}

var (
	mu       sync.Mutex
	rootOnce struct {
		done bool
		dir  string
		err  error
	}
	builds = map[string]string{} // input key -> bootstrap path, for this process
)

// locate returns this module's root directory and pkg's directory relative to it.
func locate(pkg string) (root, rel string, err error) {
	r, ok := strings.CutPrefix(pkg, thisModule+"/")
	if !ok || r == "" || strings.Contains(r, "..") {
		return "", "", fmt.Errorf("golambda: %q is not a package of %s", pkg, thisModule)
	}
	root, err = moduleDir()
	if err != nil {
		return "", "", err
	}
	rel = filepath.FromSlash(r)
	if st, err := os.Stat(filepath.Join(root, rel, "main.go")); err != nil || st.IsDir() {
		return "", "", fmt.Errorf("golambda: package %s has no main.go in %s", pkg, filepath.Join(root, rel))
	}
	return root, rel, nil
}

// moduleDir finds the source of this module: the working directory's own module when it is this
// one (free), otherwise `go list -m -json` from the working directory (a user's module that
// requires ours; about 0.1 s, once per process), downloading the module if the cache lacks it.
func moduleDir() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if rootOnce.done {
		return rootOnce.dir, rootOnce.err
	}
	rootOnce.done = true
	if d := moduleRoot(); d != "" {
		rootOnce.dir = d
		return d, nil
	}
	rootOnce.dir, rootOnce.err = listModule()
	return rootOnce.dir, rootOnce.err
}

// moduleRoot is the directory of this module's go.mod above the working directory, or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+thisModule {
				return dir
			}
			return "" // another module (a user's): go list knows where ours is
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// listModule asks the go command where the working directory's build takes this module from.
func listModule() (string, error) {
	var m struct {
		Path, Version, Dir, GoMod string
		Error                     *struct{ Err string }
	}
	out, err := exec.Command("go", "list", "-m", "-json", thisModule).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("golambda: go list -m %s: %s", thisModule, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("golambda: go list -m %s: %w", thisModule, err)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("golambda: go list -m %s: %w", thisModule, err)
	}
	if m.Error != nil {
		return "", fmt.Errorf("golambda: go list -m %s: %s", thisModule, m.Error.Err)
	}
	if m.Dir == "" && m.Version != "" {
		// Required but not downloaded yet (go list -m does not download).
		out, err := exec.Command("go", "mod", "download", "-json", thisModule+"@"+m.Version).Output()
		if err != nil {
			return "", fmt.Errorf("golambda: go mod download %s@%s: %w", thisModule, m.Version, err)
		}
		if err := json.Unmarshal(out, &m); err != nil {
			return "", fmt.Errorf("golambda: go mod download %s@%s: %w", thisModule, m.Version, err)
		}
	}
	if m.Dir == "" {
		return "", fmt.Errorf("golambda: the go command knows no directory for %s (is it required by your go.mod?)", thisModule)
	}
	return m.Dir, nil
}

// cachedBuild returns the bootstrap of root/rel, building it unless a build of the same inputs
// is cached. The result is the only file in its directory.
func cachedBuild(root, rel string) (string, error) {
	key, err := inputKey(root, rel)
	if err != nil {
		return "", err
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := builds[key]; ok {
		return p, nil
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, key)
	out := filepath.Join(dir, "bootstrap")
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		builds[key] = out
		return out, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("golambda: build cache: %w", err)
	}
	// Build into a fresh directory and rename it into place: a concurrent synth sees either no
	// entry or a complete one.
	tmp, err := os.MkdirTemp(cache, ".build-")
	if err != nil {
		return "", fmt.Errorf("golambda: build cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := build(root, rel, filepath.Join(tmp, "bootstrap")); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(out); serr != nil { // not a concurrent winner: a real failure
			return "", fmt.Errorf("golambda: build cache: %w", err)
		}
	}
	builds[key] = out
	return out, nil
}

// cacheDir is where built bootstraps are kept.
func cacheDir() (string, error) {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("golambda: no cache directory (set %s): %w", EnvCacheDir, err)
	}
	return filepath.Join(d, "defenders-cdk", "lambda"), nil
}

// goVersion is the version of the go command that builds (not of the one that built the app).
var goVersion = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("golambda: go env GOVERSION: %w (is Go installed and on PATH?)", err)
	}
	return strings.TrimSpace(string(out)), nil
})

// inputKey hashes everything the build of root/rel reads: the go command's version, the flags
// and environment above, the package path, go.mod, go.sum, and every non-test file under
// internal/ and lambda/ outside testdata (path and content).
func inputKey(root, rel string) (string, error) {
	v, err := goVersion()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "go %s\nflags %q\nenv %q\npkg %s\n", v, buildArgs, buildEnv, filepath.ToSlash(rel))
	var files []string
	for _, f := range []string{"go.mod", "go.sum"} {
		files = append(files, filepath.Join(root, f))
	}
	for _, sub := range []string{"internal", "lambda"} {
		err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); p != filepath.Join(root, sub) && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "testdata") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, "_test.go") { // embedded files count too
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("golambda: hash sources: %w", err)
		}
	}
	sort.Strings(files)
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return "", fmt.Errorf("golambda: hash sources: %w", err)
		}
		relf, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "file %s\n", filepath.ToSlash(relf))
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("golambda: hash sources: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}
