#!/bin/sh
# Run the tests. Ends with "N passed, N failed".
#
#   sh tests/run.sh            make test: man page lint, unit tests (cmocka),
#                              integration tests (pytest against real binaries,
#                              one worker per core), once on SQLite and once on
#                              PostgreSQL, browser tests (the pages in headless
#                              Chromium, tests/browser)
#   sh tests/run.sh valgrind   make check: the unit tests and the integration
#                              tests again (on SQLite, then on PostgreSQL),
#                              every notifyd under valgrind
#
# Environment: BIN (where notifyd and notifyctl are), OUT (build dir),
# PYTEST_ARGS (more pytest arguments, e.g. -k NAME or --durations=20),
# JOBS (pytest workers; default: one per core).
set -u
BIN=${BIN:-bin}
OUT=${OUT:-build/default}
mode=${1:-test}
pass=0
fail=0
failed=
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
VALGRIND="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"

record() {	# record NAME STATUS
	if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $1"; fi
}

if [ "$mode" = test ]; then
	echo "== man pages (mandoc -Tlint -Wwarning)"
	for m in man/*.[1-8]; do
		out=$(mandoc -Tlint -Wwarning "$m" 2>&1)
		if [ -z "$out" ]; then record "$m" 0; else echo "$out"; record "$m" 1; fi
	done
fi

# unit_run WRAPPER...: every cmocka test binary, under WRAPPER when given.
unit_run() {
	for t in "$OUT"/tests/test_*; do
		[ -x "$t" ] || continue
		case $t in *.tap) continue ;; esac
		log="$t.tap"
		CMOCKA_MESSAGE_OUTPUT=TAP "$@" "$t" > "$log" 2>&1
		rc=$?
		ok=$(grep -c '^ok ' "$log")
		nok=$(grep -c '^not ok ' "$log")
		pass=$((pass + ok))
		fail=$((fail + nok))
		[ "$nok" -gt 0 ] && { grep -A5 '^not ok' "$log"; failed="$failed ${t##*/}"; }
		# A crash, a leak or exit without a "not ok" line is a failure too.
		if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then cat "$log"; record "${t##*/}" 1; fi
		echo "${t##*/}: $ok passed, $nok failed"
	done
}

# fuzz_replay WRAPPER...: every fuzz target once on each input of its corpus
# (fuzz/corpus/TARGET: seeds and the crashes found before), one test each.
fuzz_replay() {
	for t in "$OUT"/fuzz/fuzz_*; do
		[ -x "$t" ] || continue
		n=${t##*/}
		if out=$("$@" "$t" "fuzz/corpus/$n" 2>&1); then
			record "$n" 0
			echo "$out" | tail -1
		else
			echo "$out" | tail -30
			record "$n" 1
		fi
	done
}

# pytest_run LABEL JUNIT WRAPPER [PYTEST ARGS...]: run the integration
# tests, every notifyd under WRAPPER (may be empty), and add up the counts.
pytest_run() {
	label=$1 junit=$2 wrapper=$3
	shift 3
	echo "== $label ($jobs workers)"
	rm -f "$junit"
	xdist=
	[ "$jobs" -gt 1 ] && xdist="-n $jobs"
	# shellcheck disable=SC2086
	NOTIFYD_WRAPPER="$wrapper" NOTIFYD_BIN="$BIN/notifyd" NOTIFYCTL_BIN="$BIN/notifyctl" \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider $xdist --junitxml="$junit" \
	    "$@" ${PYTEST_ARGS:-} tests/integration
	rc=$?
	if [ -f "$junit" ]; then
		counts=$(/usr/bin/python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
print(t - f - e - k, f + e)' "$junit")
		pass=$((pass + ${counts% *}))
		fail=$((fail + ${counts#* }))
		[ "${counts#* }" -gt 0 ] && failed="$failed $label"
	elif [ "$rc" -ne 0 ]; then
		record "$label" 1
	fi
}

# browser_run: the pages in Debian's Chromium, driven by playwright-core,
# which npm installs into tests/browser/node_modules the first time.
# Screenshots go to $OUT/browser.
browser_run() {
	echo "== browser tests (tests/browser)"
	if [ ! -d tests/browser/node_modules/playwright-core ]; then
		echo "installing playwright-core into tests/browser/node_modules"
		if ! npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; then
			record "browser tests (npm ci)" 1
			return
		fi
	fi
	log="$OUT/browser.tap"
	mkdir -p "$OUT/browser"
	NOTIFYD_BIN="$BIN/notifyd" NOTIFYCTL_BIN="$BIN/notifyctl" BROWSER_OUT="$OUT/browser" \
	    node --test --test-reporter=tap --test-concurrency="$jobs" tests/browser/*.test.js \
	    > "$log" 2>&1
	rc=$?
	ok=$(sed -n 's/^# pass //p' "$log" | tail -1)
	nok=$(sed -n 's/^# fail //p' "$log" | tail -1)
	if [ -z "$ok" ] || [ -z "$nok" ]; then
		tail -40 "$log"
		record "browser tests" 1
		return
	fi
	pass=$((pass + ok))
	fail=$((fail + nok))
	if [ "$nok" -gt 0 ] || [ "$rc" -ne 0 ]; then
		grep -B2 -A25 '^ *not ok' "$log" | head -150
		failed="$failed browser"
		[ "$nok" -eq 0 ] && record "browser tests" 1
	fi
	echo "browser: $ok passed, $nok failed (screenshots in $OUT/browser)"
}

case $mode in
test)
	echo "== unit tests"
	unit_run
	echo "== fuzz corpora, replayed"
	fuzz_replay
	pytest_run "integration tests" "$OUT/integration.xml" ""
	# The same against the PostgreSQL store (issue 21): each notifyd on a
	# database of its own on a private server; what looks into SQLite's
	# files is skipped, and so is what never reaches the store (no_valgrind).
	NOTIFYD_TEST_STORE=postgresql
	export NOTIFYD_TEST_STORE
	pytest_run "integration tests on PostgreSQL" "$OUT/integration-pg.xml" "" \
	    -m "not no_valgrind"
	unset NOTIFYD_TEST_STORE
	browser_run
	;;
valgrind)
	# A leak or a memory error makes the unit test binary, or the notifyd
	# of an integration test, exit non-zero, and the test fail. Tests of
	# the build, the docs and timing alone are marked no_valgrind: they
	# reach no memory path the others do not.
	if nm "$BIN/notifyd" 2>/dev/null | grep -q __asan_init; then
		echo "tests/run.sh: valgrind needs the build without SANITIZE=1" >&2
		exit 2
	fi
	echo "== unit tests under valgrind"
	# shellcheck disable=SC2086
	unit_run $VALGRIND
	echo "== fuzz corpora, replayed under valgrind"
	# shellcheck disable=SC2086
	fuzz_replay $VALGRIND
	pytest_run "integration tests under valgrind" "$OUT/integration-valgrind.xml" \
	    "$VALGRIND" -m "not no_valgrind"
	# And on PostgreSQL, whose store is code of its own (pg_*.c).
	NOTIFYD_TEST_STORE=postgresql
	export NOTIFYD_TEST_STORE
	pytest_run "integration tests on PostgreSQL under valgrind" \
	    "$OUT/integration-pg-valgrind.xml" "$VALGRIND" -m "not no_valgrind"
	unset NOTIFYD_TEST_STORE
	;;
*)
	echo "usage: tests/run.sh [valgrind]" >&2
	exit 2
	;;
esac

[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
