#!/bin/sh
# make bare-check: the README's two commands on a bare Debian 12.
#
# A minimal Debian 12 (debootstrap --variant=minbase, plus make) in a
# chroot, a clone of this repository's HEAD in it, then, as a new user
# would: `make run` (bootstrap the build's packages, build, start; it must
# answer notifyctl ping and a send), and `CI=true make test` (the test
# tools too, then every test). Both failures that reached users so far
# were of this kind: a link before bootstrap had installed the libraries,
# and Node options that Debian's Node.js lacks. Needs root (sudo
# otherwise), Debian's archive and the npm registry; about 6 minutes.
# The host's own extra CA certificates (/usr/local/share/ca-certificates,
# a TLS proxy's, say) are trusted in the chroot as on the host.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	exec sudo -n CI="${CI:-}" sh "$0" "$@"
fi
suite=bookworm
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
    2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}

say() { printf 'bare-check: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

command -v debootstrap >/dev/null 2>&1 || {
	apt-get install -y -q debootstrap >/dev/null 2>&1 || {
		apt-get update -q >/dev/null 2>&1
		apt-get install -y -q debootstrap >/dev/null
	}
}
# make run listens on notifyd's defaults; the chroot shares the host's network.
for port in 8025 1025; do
	if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
		fail "port $port is in use here; make run in the chroot needs it"
	fi
done

dir=$(mktemp -d /var/tmp/notifyd-bare.XXXXXX)
chmod 755 "$dir"	# the chroot's /: mktemp's 0700 locks out its postgres user
# Processes whose root is the chroot's (left behind by a failure).
chrooted() {
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] && echo "${p#/proc/}"
	done
	return 0
}
cleanup() {
	for p in $(chrooted); do kill -9 "$p" 2>/dev/null || true; done
	for m in dev sys proc; do
		umount -lR "$dir/$m" 2>/dev/null || true
	done
	# Never follow a mount that is still there into the host's /dev.
	if grep -q " $dir/" /proc/mounts; then
		say "left $dir: something is still mounted in it"
	else
		rm -rf --one-file-system "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase "$suite" "$dir" "$mirror" > "$dir.log" 2>&1 ||
	{ tail -20 "$dir.log"; rm -f "$dir.log"; fail "debootstrap"; }
rm -f "$dir.log"
mount -t proc proc "$dir/proc"
mount --rbind /sys "$dir/sys"
mount --rbind /dev "$dir/dev"
cp /etc/resolv.conf "$dir/etc/resolv.conf"
if git -C "$root" rev-parse -q --verify HEAD >/dev/null 2>&1; then
	git clone -q --no-local "$root" "$dir/root/notifyd"
else	# not a git checkout: the tree as it is, without what builds make
	mkdir "$dir/root/notifyd"
	tar -C "$root" --exclude=./build --exclude=./bin --exclude=./var \
	    --exclude=node_modules -cf - . | tar -C "$dir/root/notifyd" -xf -
fi

in_root() { chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 "$@"; }
say "apt-get install make (all a bare machine is given)"
in_root sh -c 'apt-get update -q >/dev/null && apt-get install -y -q make ca-certificates >/dev/null'
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
	cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/"
	in_root update-ca-certificates >/dev/null 2>&1
fi

say "make run"
in_root sh -c 'cd /root/notifyd && exec make run' > "$dir/run.log" 2>&1 &
run=$!
i=0
until grep -q "notifyd is running" "$dir/run.log"; do
	if ! kill -0 $run 2>/dev/null; then
		tail -30 "$dir/run.log"
		fail "make run stopped before notifyd answered"
	fi
	i=$((i + 1))
	[ $i -lt 1200 ] || { tail -30 "$dir/run.log"; fail "make run: no notifyd after 10 minutes"; }
	sleep 0.5
done
out=$(in_root sh -c 'cd /root/notifyd && bin/notifyctl send --user demo --type message \
    --title "From a bare machine" && bin/notifyctl --json list --user demo') ||
	fail "notifyctl against make run's notifyd: $out"
case $out in
*'"From a bare machine"'*) ;;
*) fail "the send is not in the inbox: $out" ;;
esac
for p in $(chrooted); do
	case $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) in
	"bin/notifyd --data-dir ./var"*) kill -INT "$p" ;;
	esac
done
wait $run || fail "make run did not stop cleanly on Ctrl-C"
say "make run: built, started, answered, stopped"

say "CI=true make test"
if in_root sh -c 'cd /root/notifyd && CI=true make test' > "$dir/test.log" 2>&1; then
	tail -1 "$dir/test.log"
	say "make test passed on a bare Debian 12"
else
	mkdir -p "$root/build"
	cp "$dir/test.log" "$root/build/bare-check-test.log"
	tail -40 "$dir/test.log"
	fail "make test (its whole output: build/bare-check-test.log)"
fi
