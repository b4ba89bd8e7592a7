package lambdatest

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// BuildFlags are the go build flags of a shipped Lambda binary: the
// contract's, which the CDK bundler (constructs/internal/golambda) uses too, so that
// what the tests run is what CDK deploys, built for another platform.
var BuildFlags = contract.BuildFlags

// build is one package's cached build.
type build struct {
	once sync.Once
	path string
	err  error
}

// builds caches the builds of this test binary: each package is compiled
// once per process, into one temporary directory.
var builds struct {
	mu   sync.Mutex
	dir  string
	pkgs map[string]*build
}

// BuildBootstrap compiles the package main pkg (an import path or a
// relative package path such as "."), as the CDK bundler does but for the
// host's GOOS and GOARCH, and returns the path of the binary. Each package is
// built once per test binary; call CleanupBuilds from TestMain to remove the
// binaries afterwards. A failed build fails the test with the compiler's
// output.
func BuildBootstrap(t testing.TB, pkg string) string {
	t.Helper()
	b, err := buildEntry(pkg)
	if err != nil {
		t.Fatalf("lambdatest: build %s: %v", pkg, err)
	}
	b.once.Do(func() { b.path, b.err = compile(pkg) })
	if b.err != nil {
		t.Fatalf("lambdatest: %v", b.err)
	}
	return b.path
}

// buildEntry returns the cache entry of pkg, creating the cache directory
// on first use.
func buildEntry(pkg string) (*build, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "lambdatest-builds-")
		if err != nil {
			return nil, fmt.Errorf("create the build directory: %w", err)
		}
		builds.dir = dir
		builds.pkgs = map[string]*build{}
	}
	b, ok := builds.pkgs[pkg]
	if !ok {
		b = &build{}
		builds.pkgs[pkg] = b
	}
	return b, nil
}

// CleanupBuilds removes every binary BuildBootstrap made in this process.
// Call it from TestMain after m.Run; later BuildBootstrap calls rebuild.
func CleanupBuilds() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		return nil
	}
	err := os.RemoveAll(builds.dir)
	builds.dir, builds.pkgs = "", nil
	if err != nil {
		return fmt.Errorf("lambdatest: remove builds: %w", err)
	}
	return nil
}

// compile runs go build for pkg into a fresh directory of the cache.
func compile(pkg string) (string, error) {
	builds.mu.Lock()
	root := builds.dir
	builds.mu.Unlock()
	dir, err := os.MkdirTemp(root, "pkg-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, "bootstrap")
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: find the go command: %w", pkg, err)
	}
	args := append([]string{"build"}, BuildFlags...)
	args = append(args, "-o", out, pkg)
	cmd := exec.Command(goTool, args...)
	// Later entries win: the host platform, whatever the caller's GOOS.
	cmd.Env = append(append(os.Environ(), contract.BuildEnv...), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ModuleDeps returns the module paths compiled into a Go binary (from its
// embedded build information), so that a test can assert what a Lambda
// does not link, e.g. jsii or aws-cdk-go.
func ModuleDeps(t testing.TB, binary string) []string {
	t.Helper()
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatalf("lambdatest: read build info of %s: %v", binary, err)
	}
	deps := make([]string, 0, len(info.Deps))
	for _, d := range info.Deps {
		deps = append(deps, d.Path)
	}
	return deps
}
