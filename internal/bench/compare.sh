#!/bin/sh
# compare.sh BEFORE AFTER [PART...]: run `sedna bench --only PART` with two
# sedna binaries on this machine, interleaved (before, after, before,
# after) so that both see the same machine; each run's output goes to
# $OUT (default ./bench-compare) as PART-before-1.txt, PART-after-1.txt, ...
# PARTs default to bridge broker ji fl models. Build the binaries with
#   git worktree add /tmp/before REV && (cd /tmp/before && go build -o /tmp/sedna-before ./cmd/sedna)
#   go build -o /tmp/sedna-after ./cmd/sedna
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BEFORE AFTER [PART...]" >&2; exit 2; }
before=$1 after=$2
shift 2
parts=${*:-bridge broker ji fl models}
out=${OUT:-bench-compare}
reps=${REPS:-2}
mkdir -p "$out"
for part in $parts; do
	for rep in $(seq 1 "$reps"); do
		for which in before after; do
			eval bin=\$$which
			f="$out/$part-$which-$rep.txt"
			echo "== $part $which $rep" >&2
			"$bin" bench --only "$part" ${BENCH_FLAGS:-} >"$f" 2>&1 || echo "$part $which $rep: exit $?" >&2
		done
	done
done
