#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for a while and fails if any
# of them finds a crash (RELIABILITY.md, "Fuzzing").
#
#   scripts/fuzz.sh [-t 30s] [-j workers] [pattern]
#
#   -t  how long each target runs (go test -fuzztime; default 30s)
#   -j  fuzzing workers per target (go test -parallel; default: GOMAXPROCS)
#   pattern  an extended regular expression matched against
#            "<package> <target>"; default: every target
#
# The targets are found with `go test -list '^Fuzz' ./...`, so a new
# func FuzzXxx is picked up without editing this script. They run one after
# the other, each with -fuzzminimizetime 5s. A crash leaves its input in the
# package's testdata/fuzz/<target>/ (commit it: it becomes a seed that
# `go test` runs from then on). At the end a table shows each target's
# time, executions and result; the exit status is 1 if any target failed.
# Plain `go test ./...` (and CI) already runs every committed seed.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//'; }

fuzztime=30s
workers=""
while getopts "t:j:h" opt; do
	case $opt in
	t) fuzztime=$OPTARG ;;
	j) workers=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
pattern=${1:-.}

# Find the targets: `go test -list` prints a package's matching names and
# then its "ok  <package>" line.
list=$(go test -list '^Fuzz' ./... 2>&1) || { echo "$list" >&2; exit 2; }
targets=()
pending=()
while IFS= read -r line; do
	case $line in
	Fuzz*) pending+=("$line") ;;
	"ok "*)
		pkg=$(awk '{print $2}' <<<"$line")
		for t in "${pending[@]}"; do
			if grep -Eq -- "$pattern" <<<"$pkg $t"; then targets+=("$pkg $t"); fi
		done
		pending=()
		;;
	esac
done <<<"$list"
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches '$pattern'" >&2
	exit 2
fi

par=()
[ -n "$workers" ] && par=(-parallel "$workers")
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
rows=()
failed=0
echo "fuzz.sh: ${#targets[@]} targets, $fuzztime each"
for entry in "${targets[@]}"; do
	read -r pkg target <<<"$entry"
	log="$logdir/$target.log"
	start=$(date +%s)
	printf '%-55s ' "$pkg $target"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "${par[@]}" "$pkg" >"$log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	execs=${execs:-0}
	if [ $rc -eq 0 ]; then
		result="ok"
	else
		failed=1
		input=$(grep -o 'testdata/fuzz/[^ ]*' "$log" | head -1)
		if [ -n "$input" ]; then
			result="CRASH ($input)"
		else
			result="FAILED (exit $rc)"
		fi
		echo "--- $pkg $target ---" >&2
		tail -40 "$log" >&2
	fi
	echo "$result"
	short=${pkg#github.com/smpcall/smpcall}
	rows+=("$(printf '| %s | %s | %ss | %s | %s |' "${short:-(root)}" "$target" "$took" "$execs" "$result")")
done

echo
echo "| package | target | time (build included) | execs | result |"
echo "| --- | --- | --- | --- | --- |"
for r in "${rows[@]}"; do echo "$r"; done
exit $failed
