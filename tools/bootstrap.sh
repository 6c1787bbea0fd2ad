#!/bin/sh
# Install what notifyd needs to build (and, with "test", to be tested).
# Checks first and does nothing when every need is met, however it was met.
# On Debian-like systems missing packages are installed with apt-get
# (through sudo when not root); elsewhere the missing packages are named.
set -eu
stage=${1:-build}
here=$(dirname "$0")
cc=${CC:-cc}

have() {
	case $1 in
	pc:*)  pkg-config --exists "${1#pc:}" 2>/dev/null ;;
	h:*)   printf '#include <%s>\n' "${1#h:}" | "$cc" -E -x c - >/dev/null 2>&1 ;;
	cmd:*) command -v "${1#cmd:}" >/dev/null 2>&1 ;;
	f:*)   [ -e "${1#f:}" ] ;;
	py:*)  /usr/bin/python3 -c "import ${1#py:}" >/dev/null 2>&1 ;;
	*)     echo "bootstrap: unknown check $1" >&2; return 1 ;;
	esac
}

missing=
while read -r st check pkg; do
	case $st in ''|'#'*) continue ;; esac
	[ "$st" = build ] || [ "$st" = "$stage" ] || continue
	have "$check" || case " $missing " in
		*" $pkg "*) ;;
		*) missing="$missing $pkg" ;;
	esac
done < "$here/deps.txt"

[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "notifyd needs these Debian packages (or your system's equivalents):$missing" >&2
	echo "install them, then run make again" >&2
	exit 1
fi

sudo=
if [ "$(id -u)" != 0 ]; then
	if [ -n "${CI:-}" ] || ! [ -t 0 ]; then sudo="sudo -n"; else sudo=sudo; fi
	command -v sudo >/dev/null 2>&1 || {
		echo "bootstrap: not root and no sudo; install as root:$missing" >&2
		exit 1
	}
fi
echo "bootstrap: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once, only when
# an install is needed, and retry the install after refreshing.
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
	$sudo apt-get update -q
	$sudo apt-get install -y -q --no-install-recommends $missing
}
