// Package testtool finds the external programs that tests run (coturn,
// opusdec, vpxdec) with one rule: .ci/run installs them, so a missing tool
// fails the test in CI (the CI environment variable is set) and skips it on
// a developer machine. It imports nothing of the project, so every
// package's tests can use it.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of the program name from the Debian package pkg.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed but CI is set; .ci/run installs %s", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p
}
