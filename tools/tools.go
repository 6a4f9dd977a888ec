//go:build tools

// Package tools pins the development tools in their own module, so that they
// never enter the SDK's dependency graph. Run them with
// `go run -modfile=tools/go.mod <tool>` from the repository root.
package tools

import (
	_ "golang.org/x/perf/cmd/benchstat"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
