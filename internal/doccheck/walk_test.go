package doccheck

import (
	"bufio"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// modulePath is the module whose files the checks read.
const modulePath = "github.com/smpcall/smpcall"

// moduleRoot returns the directory of this module's go.mod, found by walking
// up from the package directory the test runs in.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if modulePathOf(filepath.Join(dir, "go.mod")) == modulePath {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod of %s above the test's directory", modulePath)
		dir = parent
	}
}

// modulePathOf returns the module path declared in a go.mod file, or "".
func modulePathOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// goFiles returns every .go file of the module under root, test files
// included, as paths relative to root with forward slashes, sorted. It skips
// what the go command skips (testdata, directories starting with "." or "_")
// and nested modules (a directory with its own go.mod, such as tools/, and
// anything that is not part of this module, such as another checkout placed
// inside this one).
func goFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || name == "node_modules" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "_") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(out)
	require.NotEmpty(t, out, "no Go files found under %s", root)
	return out
}

// pkg is one package directory: its non-test files that the default build
// context selects, parsed with comments.
type pkg struct {
	dir   string // relative to the module root, "." for the root
	name  string
	files map[string]*ast.File // by relative path
	tests []string             // relative paths of its _test.go files
}

// loadPackages parses the non-test files of every package of the module.
// Files excluded by build constraints for the default context (such as
// //go:build ignore) are left out, as the go command leaves them out.
func loadPackages(t testing.TB, root string, fset *token.FileSet) []*pkg {
	t.Helper()
	byDir := map[string]*pkg{}
	var dirs []string
	for _, rel := range goFiles(t, root) {
		dir := filepath.ToSlash(filepath.Dir(rel))
		p := byDir[dir]
		if p == nil {
			p = &pkg{dir: dir, files: map[string]*ast.File{}}
			byDir[dir] = p
			dirs = append(dirs, dir)
		}
		if strings.HasSuffix(rel, "_test.go") {
			p.tests = append(p.tests, rel)
			continue
		}
		abs := filepath.Join(root, filepath.FromSlash(rel))
		ok, err := build.Default.MatchFile(filepath.Dir(abs), filepath.Base(abs))
		require.NoError(t, err, rel)
		if !ok {
			continue
		}
		f, err := parser.ParseFile(fset, abs, nil, parser.ParseComments|parser.SkipObjectResolution)
		require.NoError(t, err, rel)
		if p.name == "" {
			p.name = f.Name.Name
		}
		require.Equal(t, p.name, f.Name.Name, "%s: two packages in one directory", rel)
		p.files[rel] = f
	}
	var out []*pkg
	for _, d := range dirs {
		if p := byDir[d]; len(p.files) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
