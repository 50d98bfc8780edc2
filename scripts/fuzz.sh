#!/usr/bin/env bash
# Runs every fuzz target of kplane's input decoders for a bounded time, one
# after the other: FUZZTIME each (default 10s; any `go test -fuzztime`
# value, e.g. 60s or 5000x). The committed seeds under testdata/fuzz run
# on every `go test` anyway; this finds new inputs. A failure leaves the
# crasher in the package's testdata/fuzz/<target>: fix the code, keep the
# file as a seed.
#
#   scripts/fuzz.sh                      all targets, 10s each
#   FUZZTIME=2m scripts/fuzz.sh          longer
#   scripts/fuzz.sh FuzzParseJUnit       only the named targets
#   FUZZFLAGS=-parallel=1 scripts/fuzz.sh   one worker, on a busy machine
#
# The first run compiles every dependency again with coverage
# instrumentation (for cmd/kplane, all of kplane's); later runs hit the
# build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZFLAGS=${FUZZFLAGS:-}

# target package: what each parses.
targets=(
  "FuzzDecodeProto ./ktrace/otlp"     # OTLP/HTTP protobuf
  "FuzzDecodeJSON ./ktrace/otlp"      # OTLP/HTTP JSON
  "FuzzDecode ./ktrace/zipkin"        # Zipkin v2 JSON
  "FuzzExtract ./ktrace/sdk"          # trace context headers
  "FuzzParseJUnit ./hawaii"           # JUnit XML test results
  "FuzzParsePolicies ./headquarter"   # autoscaler policy YAML
  "FuzzDecodeReport ./web"            # build report JSON
  "FuzzAPI ./web"                     # the whole HTTP API: routes, headers, bodies
  "FuzzConfigFile ./cmd/kplane"       # kplane.yaml
)

failed=()
for t in "${targets[@]}"; do
  read -r name pkg _ <<<"$t"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  echo "fuzz: $name ($pkg) for $FUZZTIME"
  start=$(date +%s)
  if ! $GO test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" $FUZZFLAGS "$pkg"; then
    failed+=("$name")
  fi
  echo "fuzz: $name took $(( $(date +%s) - start ))s"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (the crashing inputs are in testdata/fuzz/<target>)" >&2
  exit 1
fi
