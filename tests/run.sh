#!/bin/sh
# Run every test: man page lint, unit tests (cmocka), integration tests
# (pytest against real binaries). Ends with "N passed, N failed".
# Environment: BIN (where notifyd and notifyctl are), OUT (build dir).
set -u
BIN=${BIN:-bin}
OUT=${OUT:-build/default}
pass=0
fail=0
failed=

record() {	# record NAME STATUS
	if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $1"; fi
}

echo "== man pages (mandoc -Tlint -Wwarning)"
for m in man/*.[1-8]; do
	out=$(mandoc -Tlint -Wwarning "$m" 2>&1)
	if [ -z "$out" ]; then record "$m" 0; else echo "$out"; record "$m" 1; fi
done

echo "== unit tests"
for t in "$OUT"/tests/test_*; do
	[ -x "$t" ] || continue
	log="$t.tap"
	CMOCKA_MESSAGE_OUTPUT=TAP "$t" > "$log" 2>&1
	rc=$?
	ok=$(grep -c '^ok ' "$log")
	nok=$(grep -c '^not ok ' "$log")
	pass=$((pass + ok))
	fail=$((fail + nok))
	[ "$nok" -gt 0 ] && { grep -A5 '^not ok' "$log"; failed="$failed ${t##*/}"; }
	# A crash or exit without a "not ok" line is a failure too.
	if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then cat "$log"; record "${t##*/}" 1; fi
	echo "${t##*/}: $ok passed, $nok failed"
done

# pytest LABEL JUNIT [VAR=VALUE...]: run the integration tests, add up the counts.
pytest_run() {
	label=$1 junit=$2
	shift 2
	echo "== $label"
	rm -f "$junit"
	env "$@" NOTIFYD_BIN="$BIN/notifyd" NOTIFYCTL_BIN="$BIN/notifyctl" \
	    /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$junit" \
	    ${PYTEST_ARGS:-} tests/integration
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

pytest_run "integration tests" "$OUT/integration.xml"
# Every daemon of the integration tests again under valgrind: a leak or a
# memory error makes its exit status non-zero and the test fail. Skipped
# in sanitizer builds (ASan and valgrind do not mix) and with VALGRIND=0.
if [ "${VALGRIND:-1}" != 0 ] && ! nm "$BIN/notifyd" 2>/dev/null | grep -q __asan_init; then
	pytest_run "integration tests under valgrind" "$OUT/integration-valgrind.xml" \
	    NOTIFYD_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
fi

[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
