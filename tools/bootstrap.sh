#!/bin/sh
# Install what notifyd needs to build (and, with "test", to be tested).
# Checks first and does nothing when every need is met, however it was met.
# On Debian-like systems missing packages are installed with apt-get
# (through sudo when not root); where that cannot run, every missing
# package is named in one message and the exit status is 1, so make stops
# before it compiles anything. Lines of stage "opt" are installed with
# the build stage when apt-get can, and never fail the build: the Makefile
# builds without them.
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
optional=
while read -r st check pkg; do
	case $st in ''|'#'*) continue ;; esac
	case $st in
	build) ;;
	opt)   [ "$stage" = build ] || continue ;;
	*)     [ "$st" = "$stage" ] || continue ;;
	esac
	have "$check" && continue
	if [ "$st" = opt ]; then
		case " $optional " in *" $pkg "*) ;; *) optional="$optional $pkg" ;; esac
	else
		case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
	fi
done < "$here/deps.txt"

[ -z "$missing$optional" ] && exit 0

# refuse WHY: the one message of a bootstrap that cannot install.
refuse() {
	if [ -z "$missing" ]; then
		exit 0	# only optional packages are missing: build without them
	fi
	echo "bootstrap: $1" >&2
	echo "bootstrap: notifyd needs these packages (Debian names; your system's equivalents elsewhere):$missing" >&2
	[ -n "$optional" ] && echo "bootstrap: and can use:$optional" >&2
	echo "bootstrap: install them, then run make again" >&2
	exit 1
}

command -v apt-get >/dev/null 2>&1 || refuse "no apt-get here"
sudo=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || refuse "not root, and no sudo to run apt-get with"
	if [ -n "${CI:-}" ] || ! [ -t 0 ]; then sudo="sudo -n"; else sudo=sudo; fi
fi
echo "bootstrap: installing$missing$optional" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once, only when
# an install is needed, and retry the install after refreshing.
# shellcheck disable=SC2086
apt_install() {
	$sudo apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
		$sudo apt-get update -q >/dev/null 2>&1
		$sudo apt-get install -y -q --no-install-recommends "$@"
	}
}
# shellcheck disable=SC2086
apt_install $missing $optional || {
	[ -n "$optional" ] && [ -n "$missing" ] && apt_install $missing && exit 0
	refuse "apt-get could not install them"
}
