//go:build unix

package review

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load(path) and fails the test if it does not return
// within a few seconds (opening a FIFO would block until a writer comes).
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("Load(%s) hangs", path)
		return nil
	}
}

func TestFIFOsAndDevicesAreNeverOpened(t *testing.T) {
	manifest := `{"artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}}`
	tests := []struct {
		name  string
		files map[string]string
		fifo  string // created as a FIFO
		arg   string
		want  string
	}{
		{name: "a FIFO given as the template", fifo: "app.yaml", arg: "app.yaml", want: "app.yaml is a named pipe (FIFO), not a template file or a directory"},
		{name: "a FIFO as a manifest's template", files: map[string]string{"manifest.json": manifest}, fifo: "app.template.json",
			want: "app.template.json: a named pipe (FIFO), not a regular file"},
		{name: "a FIFO as the manifest", fifo: "manifest.json", want: "manifest.json: a named pipe (FIFO), not a regular file"},
		{name: "a FIFO as a nested template", files: map[string]string{"app.yaml": nestedStackYAML("child.yaml")}, fifo: "child.yaml", arg: "app.yaml",
			want: "child.yaml: a named pipe (FIFO), not a regular file"},
		{name: "a FIFO in a directory of templates", files: map[string]string{"app.yaml": "Resources: {}\n"}, fifo: "pipe.yaml",
			want: "pipe.yaml: a named pipe (FIFO), not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			if err := syscall.Mkfifo(filepath.Join(dir, tc.fifo), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			err := loadWithin(t, filepath.Join(dir, tc.arg))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "review: ") {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("a device given as the template", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		err := loadWithin(t, "/dev/zero")
		if err == nil || !strings.Contains(err.Error(), "/dev/zero is a device") {
			t.Fatalf("got error %v, want one saying /dev/zero is a device", err)
		}
	})
	t.Run("a device linked from inside the input", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"app.yaml": nestedStackYAML("child.yaml")})
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "child.yaml")); err != nil {
			t.Skip(err)
		}
		err := loadWithin(t, filepath.Join(dir, "app.yaml"))
		if err == nil || !strings.Contains(err.Error(), "leads outside the input directory") {
			t.Fatalf("got error %v, want one saying the link leads outside", err)
		}
	})
}
