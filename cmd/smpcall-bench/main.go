// Command smpcall-bench measures what the SDK costs against plain pion.
//
//	go run ./cmd/smpcall-bench capacity [flags]
//
// capacity ramps concurrent frame-encrypted calls (audio, or video at a set
// bitrate) until frame delivery drops below -min-delivery (99.9 %) or the
// one-way frame latency p99 exceeds -max-p99 (50 ms), and measures raw pion
// pairs carrying the same frames in the same run, step by step. With
// -peers process the far ends run in a second process that the command
// starts, so the measured process carries only its own leg of every call.
// It prints a progress line per step on standard error and a JSON summary
// at the end (see BENCHMARKS.md, "Capacity"). -check makes it a regression
// guard: exit status 1 unless every step connects all its calls and
// delivers -min-delivery of its frames.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	if os.Getenv(peerEnv) != "" {
		if err := runPeer(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(stderr, "usage: smpcall-bench capacity [flags]   (smpcall-bench capacity -h for the flags)")
		return 2
	}
	switch args[0] {
	case "capacity":
		return runCapacity(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "smpcall-bench: unknown command %q\n", args[0])
	return 2
}

// logf reports a problem that does not stop the run.
func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
