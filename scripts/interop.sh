#!/usr/bin/env bash
# Node.js interop: runs the amqplib client's OWN test suite, then our round trip test
# (tests/interop/roundtrip.test.js), against Warren, or against any broker by URL.
#
#   scripts/interop.sh                                        # builds and starts Warren itself
#   INTEROP_URL=amqp://guest:guest@127.0.0.1:5673/%2f scripts/interop.sh   # e.g. RabbitMQ
#
# What it does:
#   1. installs the pinned packages of tests/interop/package-lock.json (amqplib 0.10.9, which
#      ships its test/ folder in the npm tarball, and that suite's test dependencies mocha and
#      claire) into target/interop/ with `npm ci`, once (again when the lock file changes);
#   2. without INTEROP_URL: `cargo build --bin warren` (a no-op when up to date) and starts
#      target/debug/warren (or WARREN_BIN) with a fresh temporary data dir on 127.0.0.1:5672
#      when that port is free (amqplib's suite assumes a broker there), else on a free port;
#   3. starts tests/interop/relay.js on whichever of 127.0.0.1:5672 and [::1]:5672 is free and
#      not the broker, forwarding to the broker: three of amqplib's tests ignore the URL and
#      connect to amqp://localhost / amqp://[::1] (INTEROP_RELAY=0 turns this off);
#   4. runs amqplib's suite (`mocha --check-leaks -u tdd --exit test/`, as its Makefile does)
#      with URL=<broker>, then our test with node's test runner, and prints
#      passed/failed/skipped for each and a closing total.
#
# Environment:
#   INTEROP_URL        broker to test instead of starting Warren
#   WARREN_BIN         Warren binary to start (default: target/debug/warren, built by cargo)
#   WARREN_PORT        port for Warren (default: 5672 if free, else any free port)
#   INTEROP_CACHE      install dir (default: target/interop)
#   INTEROP_RELAY=0    do not start the localhost:5672 relay
#   INTEROP_TRACE=FILE the relay appends a per-frame trace of each relayed connection to FILE
#   INTEROP_AMQPLIB_GIT=DIR  also run a newer amqplib's suite (node --test) from a git dir
#                      (e.g. a clone of amqplib), at INTEROP_AMQPLIB_REF (default v2.0.1).
#                      Releases after 0.10.9 publish no tests to npm, so this needs a clone.
# Exit status: 0 when every test passed, 1 when some failed, 2 when it could not run them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
CACHE="${INTEROP_CACHE:-$ROOT/target/interop}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
RESULTS="$CACHE/results"
mkdir -p "$RESULTS"
rm -f "$RESULTS"/amqplib.json "$RESULTS"/amqplib-git.tap "$RESULTS"/roundtrip.tap

section() { printf '\n==== %s ====\n' "$*"; }
die() { echo "interop: $*" >&2; exit 2; }

command -v node >/dev/null || die "node is required (Node.js 18 or newer)"
command -v npm >/dev/null || die "npm is required"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
    || die "Node.js 18 or newer is required (found $(node -v))"

# ---------------------------------------------------------------- pinned packages
section "npm ci (tests/interop/package-lock.json -> ${CACHE#"$ROOT"/})"
if ! cmp -s "$ROOT/tests/interop/package-lock.json" "$CACHE/package-lock.json" \
    || [ ! -f "$CACHE/node_modules/amqplib/test/channel_api.js" ]; then
    cp "$ROOT/tests/interop/package.json" "$ROOT/tests/interop/package-lock.json" "$CACHE/"
    (cd "$CACHE" && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "up to date"
fi
AMQPLIB_DIR="$CACHE/node_modules/amqplib"
AMQPLIB_VERSION="$(node -p "require('$AMQPLIB_DIR/package.json').version")"
MOCHA="$CACHE/node_modules/.bin/mocha"

# ---------------------------------------------------------------- broker
WARREN_PID="" RELAY_PID="" DATA_DIR=""
cleanup() {
    if [ -n "$RELAY_PID" ]; then kill "$RELAY_PID" 2>/dev/null || true; fi
    if [ -n "$WARREN_PID" ]; then
        kill -TERM "$WARREN_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$WARREN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$WARREN_PID" 2>/dev/null || true
    fi
    if [ -n "$DATA_DIR" ]; then rm -rf "$DATA_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
can_listen() {  # can_listen HOST PORT: nothing listens there yet
    node -e 'const s=require("net").createServer().once("error",()=>process.exit(1))
             .listen({host:process.argv[1],port:+process.argv[2],ipv6Only:true},()=>s.close())' "$1" "$2"
}
port_open() {  # port_open HOST PORT
    node -e 'const s=require("net").connect({host:process.argv[1],port:+process.argv[2]},()=>process.exit(0));
             s.on("error",()=>process.exit(1));s.setTimeout(500,()=>process.exit(1))' "$1" "$2"
}

if [ -n "${INTEROP_URL:-}" ]; then
    URL="$INTEROP_URL"
    BROKER="the broker at $URL"
else
    if [ -z "${WARREN_BIN:-}" ]; then
        section "cargo build --bin warren"
        cargo build --bin warren
        WARREN_BIN="$ROOT/target/debug/warren"
    fi
    [ -x "$WARREN_BIN" ] || die "no Warren binary at $WARREN_BIN"
    section "starting Warren"
    DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/warren-interop.XXXXXX")"
    # amqplib's suite assumes a broker on localhost:5672 (three of its tests ignore the URL),
    # so Warren goes there when that port is free, else on a free port behind the relay.
    if [ -n "${WARREN_PORT:-}" ]; then PORT="$WARREN_PORT"
    elif can_listen 127.0.0.1 5672; then PORT=5672
    else PORT=""; fi
    for attempt in 1 2 3 4 5; do
        if [ -z "$PORT" ] || [ "$attempt" -gt 1 ]; then PORT="$(free_port)"; fi
        "$WARREN_BIN" --amqp-listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
            --http-listen 127.0.0.1:0 >"$RESULTS/warren.log" 2>&1 &
        WARREN_PID=$!
        for _ in $(seq 1 300); do
            port_open 127.0.0.1 "$PORT" && break
            kill -0 "$WARREN_PID" 2>/dev/null || break
            sleep 0.1
        done
        if port_open 127.0.0.1 "$PORT"; then break; fi
        kill "$WARREN_PID" 2>/dev/null || true; wait "$WARREN_PID" 2>/dev/null || true; WARREN_PID=""
        [ "$attempt" -lt 5 ] || { tail -20 "$RESULTS/warren.log" >&2; die "Warren did not start"; }
    done
    URL="amqp://guest:guest@127.0.0.1:$PORT/%2f"
    BROKER="Warren ($WARREN_BIN) at $URL, log ${RESULTS#"$ROOT"/}/warren.log"
fi
echo "testing $BROKER"

# ---------------------------------------------------------------- localhost:5672 relay
read -r BROKER_HOST BROKER_PORT < <(node -e '
    const u = new URL(process.argv[1]);
    const h = u.hostname.replace(/^\[|\]$/g, "");
    console.log(h === "" || h === "localhost" ? "127.0.0.1" : h, u.port || 5672)' "$URL")
# Relay each of 127.0.0.1:5672 and [::1]:5672 that is not the broker itself.
RELAY_ADDRESSES=""
for a in 127.0.0.1 ::1; do
    if [ "$BROKER_PORT" = 5672 ] && [ "$BROKER_HOST" = "$a" ]; then continue; fi
    RELAY_ADDRESSES="${RELAY_ADDRESSES:+$RELAY_ADDRESSES,}$a"
done
if [ "${INTEROP_RELAY:-1}" = 0 ]; then
    echo "relay off: amqplib's tests that connect to amqp://localhost reach whatever is on port 5672"
else
    : >"$RESULTS/relay.log"
    RELAY_ADDRESSES="$RELAY_ADDRESSES" RELAY_TRACE="${INTEROP_TRACE:-}" \
        node "$ROOT/tests/interop/relay.js" "$BROKER_HOST" "$BROKER_PORT" >"$RESULTS/relay.log" 2>&1 &
    RELAY_PID=$!
    for _ in $(seq 1 100); do
        grep -q '^relay ready' "$RESULTS/relay.log" && break
        kill -0 "$RELAY_PID" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q '^relay ready' "$RESULTS/relay.log"; then
        kill "$RELAY_PID" 2>/dev/null || true; RELAY_PID=""
    fi
    sed 's/^/relay: /' "$RESULTS/relay.log"
    if grep -q 'cannot listen' "$RESULTS/relay.log" || [ -z "$RELAY_PID" ]; then
        echo "NOTE: amqplib's tests that connect to amqp://localhost or amqp://[::1] (Connect API:"
        echo "      serverProperties, using custom heartbeat option, ipv6) reach whatever listens there."
    fi
fi

# ---------------------------------------------------------------- summaries
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0
add() { TOTAL_PASS=$((TOTAL_PASS + $1)); TOTAL_FAIL=$((TOTAL_FAIL + $2)); TOTAL_SKIP=$((TOTAL_SKIP + $3)); }
LINES=()

# mocha's JSON report -> the failures, then "P F S"
mocha_summary() {
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        for (const t of r.failures) {
            const msg = String((t.err && t.err.message) || "").split("\n")[0];
            console.error("  FAILED: " + t.fullTitle + "\n          " + msg);
        }
        console.log(r.stats.passes, r.stats.failures, r.stats.pending);' "$1"
}
# node --test TAP file -> the failed tests (the innermost ones: a suite or a file fails
# whenever one of its tests does), then "P F S"; cancelled (timed out) counts as failed
tap_summary() {
    node -e '
        const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
        const names = [], childFailed = [];
        // the first "error:" line of the YAML block after a "not ok" line
        const why = (i) => {
            for (let j = i + 1; j < lines.length && !/^\s*\.\.\.$/.test(lines[j]); j++) {
                const m = lines[j].match(/^\s*error: (.*)$/);
                if (m) return m[1].replace(/^(["\x27])(.*)\1$/, "$2").replace(/^\|-?$/, lines[j + 1] || "").trim();
            }
            return "";
        };
        for (const [i, l] of lines.entries()) {
            const sub = l.match(/^(\s*)# Subtest: (.*)$/);
            if (sub) {
                const d = sub[1].length / 4;
                names[d] = sub[2]; names.length = d + 1; childFailed[d] = false;
            }
            const bad = l.match(/^(\s*)not ok \d+ - (.*)$/);
            if (bad) {
                const d = bad[1].length / 4;
                if (!childFailed[d]) {
                    console.error("  FAILED: " + names.slice(0, d).concat(bad[2]).join(" > "));
                    console.error("          " + why(i));
                }
                for (let i = 0; i < d; i++) childFailed[i] = true;
            }
        }
        const n = (k) => Number((lines.find((l) => l.startsWith("# " + k + " ")) || "# x 0").split(" ")[2]);
        console.log(n("pass"), n("fail") + n("cancelled"), n("skipped") + n("todo"));' "$1"
}
# record LABEL REPORT SUMMARY_FUNCTION: adds the counts to the totals and the summary lines
record() {
    local p f s
    if [ -s "$2" ] && read -r p f s < <("$3" "$2"); then
        add "$p" "$f" "$s"
        LINES+=("$1: $p passed, $f failed, $s skipped")
    else
        add 0 1 0
        LINES+=("$1: no report (${2#"$ROOT"/}); counted as 1 failed")
    fi
}

status=0

# ---------------------------------------------------------------- amqplib's own suite
section "amqplib $AMQPLIB_VERSION test suite (mocha, URL=$URL)"
(cd "$AMQPLIB_DIR" && URL="$URL" timeout 900 "$MOCHA" --check-leaks -u tdd --exit \
    --reporter json --reporter-option "output=$RESULTS/amqplib.json" test/) \
    >"$RESULTS/amqplib.out" 2>&1 || status=1
[ -s "$RESULTS/amqplib.json" ] || cat "$RESULTS/amqplib.out"
record "amqplib $AMQPLIB_VERSION suite" "$RESULTS/amqplib.json" mocha_summary
echo "report: ${RESULTS#"$ROOT"/}/amqplib.json, output: ${RESULTS#"$ROOT"/}/amqplib.out"

# ---------------------------------------------------------------- a newer amqplib, from git
if [ -n "${INTEROP_AMQPLIB_GIT:-}" ]; then
    REF="${INTEROP_AMQPLIB_REF:-v2.0.1}"
    SRC="$CACHE/amqplib-git-$REF"
    section "amqplib $REF test suite from $INTEROP_AMQPLIB_GIT (node --test, URL=$URL)"
    if [ ! -f "$SRC/package.json" ]; then
        rm -rf "$SRC"; mkdir -p "$SRC"
        git --git-dir "$INTEROP_AMQPLIB_GIT" archive "$REF" 2>/dev/null | tar x -C "$SRC" \
            || git -C "$INTEROP_AMQPLIB_GIT" archive "$REF" | tar x -C "$SRC"
    fi
    # Its own `npm test` is `node --test --test-timeout=1000`; 30 s leaves room for a debug
    # build on a loaded machine. claire (its only test dependency) comes from our cache.
    (cd "$SRC" && URL="$URL" NODE_PATH="$CACHE/node_modules" timeout 900 node --test --test-timeout=30000 \
        --test-reporter=tap --test-reporter-destination="$RESULTS/amqplib-git.tap") \
        >"$RESULTS/amqplib-git.out" 2>&1 || status=1
    record "amqplib $REF suite (git)" "$RESULTS/amqplib-git.tap" tap_summary
    echo "report: ${RESULTS#"$ROOT"/}/amqplib-git.tap"
fi

# ---------------------------------------------------------------- our round trip test
section "tests/interop/roundtrip.test.js (node --test, amqplib $AMQPLIB_VERSION)"
URL="$URL" NODE_PATH="$CACHE/node_modules" timeout 300 node --test --test-timeout=60000 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$RESULTS/roundtrip.tap" \
    "$ROOT/tests/interop/roundtrip.test.js" || status=1
record "roundtrip.test.js" "$RESULTS/roundtrip.tap" tap_summary

# ---------------------------------------------------------------- totals
section "summary: $BROKER"
printf '%s\n' "${LINES[@]}"
if [ "$TOTAL_FAIL" -gt 0 ]; then status=1; fi
echo "interop: $TOTAL_PASS passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
exit "$status"
