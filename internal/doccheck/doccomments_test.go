package doccheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocComments fails listing every package without a package doc comment,
// every exported identifier of a library package without a doc comment, and
// every exported field or interface method of an exported type of a public
// library package (not internal) without one, so that the whole API reads
// well on pkg.go.dev (issue 15, point 5).
func TestDocComments(t *testing.T) {
	root := moduleRoot(t)
	findings := checkDocComments(t, root)
	for _, f := range findings {
		t.Log(f)
	}
	if len(findings) > 0 {
		t.Fatalf("%d missing doc comments (listed above): every package needs a package doc comment "+
			"(\"Package name ...\" for libraries), and every exported identifier of a library package a doc comment "+
			"(a doc comment on an enclosing const or var group counts), and every exported field or interface method "+
			"of an exported type of a public package a doc comment or a trailing line comment", len(findings))
	}
}

// checkDocComments returns one "file:line: ..." finding per missing doc
// comment under root, sorted.
func checkDocComments(t testing.TB, root string) []string {
	t.Helper()
	fset := token.NewFileSet()
	var out []string
	at := func(p token.Pos) string { return relPos(fset, root, p) }
	for _, p := range loadPackages(t, root, fset) {
		out = append(out, checkPackageDoc(fset, root, p)...)
		if p.name == "main" {
			continue // a command's exported names are not API
		}
		public := !isInternal(p.dir)
		for _, rel := range sortedKeys(p.files) {
			for _, decl := range p.files[rel].Decls {
				out = append(out, checkDecl(decl, at)...)
				if public {
					out = append(out, checkMembers(decl, at)...)
				}
			}
		}
	}
	sortFindings(out)
	return out
}

// checkPackageDoc requires a package doc comment in one of the package's
// files; a library's must begin "Package <name> ", as go doc expects.
func checkPackageDoc(fset *token.FileSet, root string, p *pkg) []string {
	files := sortedKeys(p.files)
	for _, rel := range files {
		if d := p.files[rel].Doc; d != nil {
			if p.name != "main" && !strings.HasPrefix(d.Text(), "Package "+p.name+" ") {
				return []string{fmt.Sprintf("%s: package %s doc comment should begin %q",
					relPos(fset, root, d.Pos()), p.name, "Package "+p.name+" ")}
			}
			return nil
		}
	}
	first := p.files[files[0]]
	return []string{fmt.Sprintf("%s: package %s (%s/) has no package doc comment",
		relPos(fset, root, first.Package), p.name, p.dir)}
}

// checkDecl reports the exported identifiers of one top-level declaration
// that have no doc comment.
func checkDecl(decl ast.Decl, at func(token.Pos) string) []string {
	var out []string
	switch d := decl.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() || d.Doc != nil {
			return nil
		}
		if d.Recv == nil {
			return []string{fmt.Sprintf("%s: exported func %s has no doc comment", at(d.Pos()), d.Name.Name)}
		}
		recv := receiverType(d.Recv)
		if recv == "" || !ast.IsExported(recv) {
			return nil // a method of an unexported type is not in the docs
		}
		return []string{fmt.Sprintf("%s: exported method %s.%s has no doc comment", at(d.Pos()), recv, d.Name.Name)}
	case *ast.GenDecl:
		grouped := d.Lparen.IsValid()
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				// As in golint: the declaration's comment counts only for
				// an ungrouped type; in a group each type needs its own.
				if s.Name.IsExported() && s.Doc == nil && (grouped || d.Doc == nil) {
					out = append(out, fmt.Sprintf("%s: exported type %s has no doc comment", at(s.Pos()), s.Name.Name))
				}
			case *ast.ValueSpec:
				// A const or var group's comment documents its members, and
				// so does a member's trailing line comment: go doc shows both.
				if d.Doc != nil || s.Doc != nil || s.Comment != nil {
					continue
				}
				for _, n := range s.Names {
					if n.IsExported() {
						out = append(out, fmt.Sprintf("%s: exported %s %s has no doc comment", at(n.Pos()), d.Tok, n.Name))
					}
				}
			}
		}
	}
	return out
}

// checkMembers reports the exported fields of the exported struct types, and
// the exported methods of the exported interface types, of one top-level
// declaration that have neither a doc comment nor a trailing line comment
// (go doc shows both). Embedded fields and interfaces are exempt: they have
// no name of their own, and their type has its doc comment.
func checkMembers(decl ast.Decl, at func(token.Pos) string) []string {
	d, ok := decl.(*ast.GenDecl)
	if !ok || d.Tok != token.TYPE {
		return nil
	}
	var out []string
	for _, spec := range d.Specs {
		s := spec.(*ast.TypeSpec)
		if !s.Name.IsExported() {
			continue // an unexported type's members are not in the docs
		}
		var members *ast.FieldList
		kind := "field"
		switch t := s.Type.(type) {
		case *ast.StructType:
			members = t.Fields
		case *ast.InterfaceType:
			members, kind = t.Methods, "method"
		default:
			continue
		}
		for _, m := range members.List {
			if m.Doc != nil || m.Comment != nil {
				continue
			}
			for _, n := range m.Names { // none for an embedded field
				if n.IsExported() {
					out = append(out, fmt.Sprintf("%s: exported %s %s.%s has no doc comment", at(n.Pos()), kind, s.Name.Name, n.Name))
				}
			}
		}
	}
	return out
}

// receiverType returns the name of a method's receiver type, without the
// pointer and type parameters.
func receiverType(recv *ast.FieldList) string {
	if recv == nil || len(recv.List) == 0 {
		return ""
	}
	typ := recv.List[0].Type
	for {
		switch e := typ.(type) {
		case *ast.StarExpr:
			typ = e.X
		case *ast.IndexExpr:
			typ = e.X
		case *ast.IndexListExpr:
			typ = e.X
		case *ast.ParenExpr:
			typ = e.X
		case *ast.Ident:
			return e.Name
		default:
			return ""
		}
	}
}

// TestPackageExamples fails for a public library package (not internal, not
// a command) without a runnable example (an Example function with an
// "Output:" comment, which go test runs and checks), or whose package doc
// does not name one of its examples, so that a reader of the package doc
// finds the example (issue 15, point 5).
func TestPackageExamples(t *testing.T) {
	root := moduleRoot(t)
	findings := checkPackageExamples(t, root)
	for _, f := range findings {
		t.Log(f)
	}
	if len(findings) > 0 {
		t.Fatalf("%d public packages lack a runnable example or do not point to it (listed above)", len(findings))
	}
}

var outputComment = regexp.MustCompile(`(?m)^\s*(Unordered output|Output):`)

// checkPackageExamples returns one finding per public library package that
// has no runnable example or whose package doc does not name one.
func checkPackageExamples(t testing.TB, root string) []string {
	t.Helper()
	fset := token.NewFileSet()
	var out []string
	for _, p := range loadPackages(t, root, fset) {
		if p.name == "main" || isInternal(p.dir) {
			continue
		}
		var examples []string
		for _, rel := range p.tests {
			f, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(rel)), nil, parser.ParseComments|parser.SkipObjectResolution)
			require.NoError(t, err, rel)
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Recv != nil || !isExampleName(fn.Name.Name) {
					continue
				}
				for _, cg := range f.Comments {
					if cg.Pos() > fn.Body.Lbrace && cg.End() < fn.Body.Rbrace && outputComment.MatchString(cg.Text()) {
						examples = append(examples, fn.Name.Name)
						break
					}
				}
			}
		}
		sort.Strings(examples)
		where := p.dir + "/"
		if len(examples) == 0 {
			out = append(out, fmt.Sprintf("%s: package %s has no runnable example (an Example function with an Output: comment in a _test.go file)", where, p.name))
			continue
		}
		doc := packageDoc(p)
		named := false
		for _, e := range examples {
			if regexp.MustCompile(`\b` + e + `\b`).MatchString(doc) {
				named = true
				break
			}
		}
		if !named {
			out = append(out, fmt.Sprintf("%s: package %s doc does not name its runnable example (one of %s)", where, p.name, strings.Join(examples, ", ")))
		}
	}
	return out
}

// isExampleName reports whether name is a go test example: "Example" or
// "Example" followed by an upper-case letter or an underscore.
func isExampleName(name string) bool {
	rest, ok := strings.CutPrefix(name, "Example")
	return ok && (rest == "" || rest[0] == '_' || ('A' <= rest[0] && rest[0] <= 'Z'))
}

// isInternal reports whether a package directory is under an internal/
// directory, which other modules cannot import.
func isInternal(dir string) bool {
	for _, part := range strings.Split(dir, "/") {
		if part == "internal" {
			return true
		}
	}
	return false
}

// packageDoc returns the text of the package's doc comments.
func packageDoc(p *pkg) string {
	var b strings.Builder
	for _, rel := range sortedKeys(p.files) {
		if d := p.files[rel].Doc; d != nil {
			b.WriteString(d.Text())
		}
	}
	return b.String()
}

// relPos formats a position as "path:line" with the path relative to root.
func relPos(fset *token.FileSet, root string, p token.Pos) string {
	pos := fset.Position(p)
	rel, err := filepath.Rel(root, pos.Filename)
	if err != nil {
		rel = pos.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line)
}

// sortFindings sorts "path:line: text" findings by path, then line.
func sortFindings(f []string) {
	key := func(s string) (string, int) {
		path, rest, _ := strings.Cut(s, ":")
		var line int
		fmt.Sscanf(rest, "%d", &line)
		return path, line
	}
	sort.SliceStable(f, func(i, j int) bool {
		pi, li := key(f[i])
		pj, lj := key(f[j])
		if pi != pj {
			return pi < pj
		}
		return li < lj
	})
}

// TestDocCommentsCheckFails runs the doc-comment checks on a small module
// with every kind of omission, so that a check that silently finds nothing
// cannot pass for a clean repository.
func TestDocCommentsCheckFails(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		path := filepath.Join(root, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n")
	write("lib/lib.go", `package lib

func Undocumented() {}

// Documented is fine.
func Documented() {}

func unexported() {}

type T struct{}

func (T) M() {}

func (*T) PtrM() {}

// N is fine.
func (T) N() {}

type hidden struct{}

func (hidden) Exported() {}

type G[X any] struct{}

func (g *G[X]) Get() {}

// Grouped types need a comment each.
type (
	A int
	// B is fine.
	B int
)

// Group documents its members.
const (
	C1 = 1
	C2 = 2
)

const (
	D1 = 1 // D1 has a trailing comment.
	D2 = 2
	d3 = 3
)

var V, W int

// S is documented; not all its fields are.
type S struct {
	// Doc is fine.
	Doc     int
	Bare, B int
	Trail   int // Trail is fine.
	hidden  int
	Embedded
	*T
	// Shared and Comment share a comment.
	Shared, Comment string
}

// Embedded is fine.
type Embedded struct{}

// I is documented; not all its methods are.
type I interface {
	// Doc is fine.
	Doc()
	Bare() int
	Trail() // Trail is fine.
	hidden()
	J
}

// J is fine.
type J interface {
	// M is fine.
	M()
}

// inner is unexported: its members are not in the docs.
type inner struct{ X int }

// Grouped struct types are checked too.
type (
	// K is fine.
	K struct{ X int }
)
`)
	write("lib/lib_test.go", "package lib\n\nfunc Undocumented2() {}\n")
	write("lib/testdata/x.go", "package x\n\nfunc Ignored() {}\n")
	write("lib/ignored.go", "//go:build ignore\n\npackage main\n\nfunc Ignored() {}\n")
	write("cmd/main.go", "package main\n\nfunc Exported() {}\n\nfunc main() {}\n")
	write("bad/bad.go", "// This package does things.\npackage bad\n")
	write("good/doc.go", "// Package good is documented. See ExampleF.\npackage good\n")
	write("good/good.go", "package good\n\n// F does nothing.\nfunc F() {}\n")
	write("good/good_test.go", "package good_test\n\nimport \"fmt\"\n\nfunc ExampleF() {\n\tfmt.Println(1)\n\t// Output: 1\n}\n")
	write("nested/go.mod", "module example.com/nested\n")
	write("nested/n.go", "package nested\n\nfunc Ignored() {}\n")
	write("internal/in/in.go", "// Package in is internal.\npackage in\n\n// T is fine: an internal type's fields are not checked.\ntype T struct{ X int }\n")

	require.Equal(t, []string{
		"bad/bad.go:1: package bad doc comment should begin \"Package bad \"",
		"cmd/main.go:1: package main (cmd/) has no package doc comment",
		"lib/lib.go:1: package lib (lib/) has no package doc comment",
		"lib/lib.go:3: exported func Undocumented has no doc comment",
		"lib/lib.go:10: exported type T has no doc comment",
		"lib/lib.go:12: exported method T.M has no doc comment",
		"lib/lib.go:14: exported method T.PtrM has no doc comment",
		"lib/lib.go:23: exported type G has no doc comment",
		"lib/lib.go:25: exported method G.Get has no doc comment",
		"lib/lib.go:29: exported type A has no doc comment",
		"lib/lib.go:42: exported const D2 has no doc comment",
		"lib/lib.go:46: exported var V has no doc comment",
		"lib/lib.go:46: exported var W has no doc comment",
		"lib/lib.go:52: exported field S.Bare has no doc comment",
		"lib/lib.go:52: exported field S.B has no doc comment",
		"lib/lib.go:68: exported method I.Bare has no doc comment",
		"lib/lib.go:86: exported field K.X has no doc comment",
	}, checkDocComments(t, root))

	require.Equal(t, []string{
		"bad/: package bad has no runnable example (an Example function with an Output: comment in a _test.go file)",
		"lib/: package lib has no runnable example (an Example function with an Output: comment in a _test.go file)",
	}, checkPackageExamples(t, root))

	write("lib/example_test.go", "package lib\n\nfunc ExampleDocumented() {\n\tDocumented()\n\t// Output:\n}\n")
	require.Contains(t, checkPackageExamples(t, root),
		"lib/: package lib doc does not name its runnable example (one of ExampleDocumented)")
}
