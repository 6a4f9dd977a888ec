// Package doccheck holds repository-wide documentation checks and nothing
// else; it has no API. Its tests run with the others in CI (go test ./...)
// and fail when:
//
//   - a package has no package doc comment, or an exported identifier of a
//     library package has no doc comment (TestDocComments);
//   - a public library package has no runnable example, or its package doc
//     does not point to one (TestPackageExamples);
//   - a comment cites a section of the wire protocol ("protocol §5.2",
//     "protocol Appendix A") or of the chat-core notes ("notes §4") that has
//     no heading in docs/protocol.md or docs/chat-core-json.md
//     (TestSectionCitations);
//   - Go code cites a document that is not in the repository
//     (TestNoExternalDocCitations);
//   - SECURITY.md names a guarding test that does not exist
//     (TestSecurityTestsExist).
//
// Run one with -v to see every finding, for example:
//
//	go test ./internal/doccheck -run TestDocComments -v
package doccheck
