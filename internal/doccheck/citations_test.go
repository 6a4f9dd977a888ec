package doccheck

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The documents that section citations in comments refer to, by the word
// that qualifies the citation.
var citedDocs = map[string]string{
	"protocol": "docs/protocol.md",       // "protocol §5.2": the wire protocol
	"notes":    "docs/chat-core-json.md", // "notes §4": the chat core's JSON shapes
}

// citationToken finds, in comment text, the words that say which document a
// section sign refers to, and the section references themselves:
//
//   - "protocol" (also "protocol's") qualifies what follows as a citation of
//     docs/protocol.md;
//   - "notes" qualifies it as a citation of docs/chat-core-json.md;
//   - "RFC 1234", "NIST", "draft-…", "ISO", "ITU" qualify it as an outside
//     reference, which is not checked;
//   - "§5", "§5.2" and "Appendix A" are references to the document of the
//     nearest qualifier before them in the same file (comment text only), or
//     to the protocol if there is none yet: the code's convention is that a
//     bare section sign is a protocol section.
var citationToken = regexp.MustCompile(`\b(protocol)\b|\b(notes)\b|(\bRFC\s*\d+|\bNIST\b|\bdraft-[a-z0-9-]+|\bISO\b|\bITU\b)|§\s*(\d+(?:\.\d+)*)|\bAppendix\s+([A-Z])\b`)

// citation is one section reference found in a comment.
type citation struct {
	line int
	doc  string // a key of citedDocs
	ref  string // "5.2" or "Appendix A"
}

// scanCitations returns the checked section references in the given comment
// lines (line numbers index the slice from first), in order.
func scanCitations(lines []string, first int) []citation {
	var out []citation
	qual := "protocol"
	for i, l := range lines {
		for _, m := range citationToken.FindAllStringSubmatch(l, -1) {
			switch {
			case m[1] != "":
				qual = "protocol"
			case m[2] != "":
				qual = "notes"
			case m[3] != "":
				qual = ""
			case qual == "":
				// a section of an outside document
			case m[4] != "":
				out = append(out, citation{first + i, qual, m[4]})
			case m[5] != "":
				out = append(out, citation{first + i, qual, "Appendix " + m[5]})
			}
		}
	}
	return out
}

// sectionHeading matches the number or appendix letter at the start of a
// Markdown heading: "## 5. Key agreement", "### 5.2 Encodings",
// "## §7 ...", "## Appendix A. ...".
var sectionHeading = regexp.MustCompile(`^#+\s+(?:§\s*)?(?:(\d+(?:\.\d+)*)\.?(?:\s|$)|(Appendix\s+[A-Z])\b)`)

// headings returns the section numbers and appendix names that are headings
// of the Markdown file at path.
func headings(t testing.TB, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]bool{}
	inFence := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := sectionHeading.FindStringSubmatch(l); m != nil {
			if m[1] != "" {
				out[m[1]] = true
			} else {
				out[strings.Join(strings.Fields(m[2]), " ")] = true
			}
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestSectionCitations fails listing every "protocol §N" / "protocol §N.M" /
// "protocol Appendix A" and "notes §N" citation in a comment of any Go file
// of the module whose section has no heading in the cited document, so that
// every citation resolves inside the repository (issue 9, point 6).
func TestSectionCitations(t *testing.T) {
	root := moduleRoot(t)
	findings, n := checkSectionCitations(t, root)
	for _, f := range findings {
		t.Log(f)
	}
	if len(findings) > 0 {
		t.Fatalf("%d of %d section citations do not resolve (listed above): add the section to the document, "+
			"correct the number, or qualify a citation of another document (\"RFC 6386 §9.1\")", len(findings), n)
	}
	t.Logf("%d section citations, all resolve", n)
}

// checkSectionCitations returns the unresolved citations under root as
// "file:line: ..." findings, and the number of citations checked.
func checkSectionCitations(t testing.TB, root string) ([]string, int) {
	t.Helper()
	have := map[string]map[string]bool{}
	for q, doc := range citedDocs {
		have[q] = headings(t, filepath.Join(root, filepath.FromSlash(doc)))
	}
	var out []string
	n := 0
	for _, rel := range goFiles(t, root) {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(root, filepath.FromSlash(rel)), nil, parser.ParseComments|parser.SkipObjectResolution)
		require.NoError(t, err, rel)
		// One stream of comment lines per file, so that a qualifier on one
		// line carries over to a citation list that continues on the next.
		var lines []string
		var lineNos []int
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				first := fset.Position(c.Slash).Line
				for i, l := range strings.Split(c.Text, "\n") {
					lines = append(lines, l)
					lineNos = append(lineNos, first+i)
				}
			}
		}
		for _, c := range scanCitations(lines, 0) {
			n++
			if !have[c.doc][c.ref] {
				sec := "§" + c.ref
				if strings.HasPrefix(c.ref, "Appendix") {
					sec = c.ref
				}
				out = append(out, fmt.Sprintf("%s:%d: %s %s has no heading in %s", rel, lineNos[c.line], c.doc, sec, citedDocs[c.doc]))
			}
		}
	}
	return out, n
}

// outsideDoc matches citations of documents that live outside the
// repository: the design notes and the protocol research the code was first
// written from, and paths into the shared work area. Their content is in
// docs/ now.
var outsideDoc = regexp.MustCompile(`\bDESIGN\.md\b|\bsimplex-calls\.md\b|/work/share[d]\b|\.\./shared/`)

// TestNoExternalDocCitations fails listing every line of a Go file that
// cites a document outside the repository, which a reader of the code
// cannot open.
func TestNoExternalDocCitations(t *testing.T) {
	root := moduleRoot(t)
	findings := checkExternalDocs(t, root)
	for _, f := range findings {
		t.Log(f)
	}
	if len(findings) > 0 {
		t.Fatalf("%d citations of documents outside the repository (listed above): cite docs/protocol.md (\"protocol §N\") or docs/architecture.md instead", len(findings))
	}
}

// checkExternalDocs returns one "file:line: ..." finding per line under
// root that cites a document outside the repository.
func checkExternalDocs(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	for _, rel := range goFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		require.NoError(t, err)
		for i, l := range strings.Split(string(b), "\n") {
			if m := outsideDoc.FindString(l); m != "" {
				out = append(out, fmt.Sprintf("%s:%d: cites %s, which is not in the repository", rel, i+1, m))
			}
		}
	}
	return out
}

func TestScanCitations(t *testing.T) {
	lines := []string{
		"// Bare signs are protocol sections (§4.2), and so is Appendix B.", // 0
		"// RFC 6386 §9.1 and §19.1 are outside, as are NIST §5 and",        // 1
		"// ISO §3; then (protocol §5.1, §7) switches back,",                // 2
		"// and the notes §4/§6 are the chat-core notes, until the",         // 3
		"// protocol's §8.3 and protocol Appendix A.",                       // 4
		"// RFC 6716 Appendix A is outside.",                                // 5
	}
	require.Equal(t, []citation{
		{0, "protocol", "4.2"},
		{0, "protocol", "Appendix B"},
		{2, "protocol", "5.1"},
		{2, "protocol", "7"},
		{3, "notes", "4"},
		{3, "notes", "6"},
		{4, "protocol", "8.3"},
		{4, "protocol", "Appendix A"},
	}, scanCitations(lines, 0))
}

// TestSectionCitationsCheckFails runs the citation checks on a small module
// with a missing section, so that a check that finds nothing cannot pass for
// a clean repository.
func TestSectionCitationsCheckFails(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		path := filepath.Join(root, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	}
	write("docs/protocol.md", "# Title\n\n## 0. Conventions\n\n### 0.1 Sources\n\n```\n## 9. In a code block\n```\n\n## Appendix A. Bridge\n")
	write("docs/chat-core-json.md", "# Notes\n\n## 4. Chat items\n")
	write("a.go", "// Package a cites protocol §0, §0.1, Appendix A and notes §4.\npackage a\n\n// x cites protocol §9 and notes §5 and §0.2 of the\n// protocol; RFC 1 §9 is fine.\nvar x int\n")
	write("b_test.go", "package a\n\n/* protocol §2.4\n   over two lines: §3 */\nvar y int\n")
	write("testdata/c.go", "package c // protocol §99\n")

	findings, n := checkSectionCitations(t, root)
	require.Equal(t, 9, n)
	require.Equal(t, []string{
		"a.go:4: protocol §9 has no heading in docs/protocol.md",
		"a.go:4: notes §5 has no heading in docs/chat-core-json.md",
		"a.go:4: notes §0.2 has no heading in docs/chat-core-json.md",
		"b_test.go:3: protocol §2.4 has no heading in docs/protocol.md",
		"b_test.go:4: protocol §3 has no heading in docs/protocol.md",
	}, findings)

	design := "DESIGN" + ".md"
	write("c.go", "package a\n\n// see "+design+", \"Layers\"\nvar z = \"simplex-calls"+".md\"\n")
	require.Equal(t, []string{
		"c.go:3: cites " + design + ", which is not in the repository",
		"c.go:4: cites simplex-calls" + ".md, which is not in the repository",
	}, checkExternalDocs(t, root))
}
