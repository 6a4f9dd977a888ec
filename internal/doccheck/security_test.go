package doccheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testNameInDoc finds test, fuzz, example and benchmark names written as
// code in a Markdown file, such as `TestSharedKey`.
var testNameInDoc = regexp.MustCompile("`((?:Test|Fuzz|Example|Benchmark)[A-Za-z0-9_]*)`")

// TestSecurityTestsExist fails when SECURITY.md names a guarding test that
// no _test.go file of the module defines, so that the list of guards cannot
// silently go stale when a test is renamed or removed.
func TestSecurityTestsExist(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "SECURITY.md"))
	require.NoError(t, err)
	named := testNameInDoc.FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, named, "SECURITY.md names no tests")

	defined := testFuncs(t, root)
	var missing []string
	for _, m := range named {
		if !defined[m[1]] {
			missing = append(missing, m[1])
		}
	}
	require.Empty(t, missing, "SECURITY.md names tests that do not exist")
}

// testFuncs returns the names of the top-level functions of every _test.go
// file of the module.
func testFuncs(t testing.TB, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, rel := range goFiles(t, root) {
		if !strings.HasSuffix(rel, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(rel)), nil, parser.SkipObjectResolution)
		require.NoError(t, err, rel)
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				out[fn.Name.Name] = true
			}
		}
	}
	return out
}
