"""The build around the code: bootstrap of dependencies, the first make, install."""
import glob
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.no_valgrind  # the build and the docs, not the daemon's memory

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The environment of a make of its own: none of the suite's make variables
# (SANITIZE=1 would send the copy's binaries to build/sanitize/).
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE")}


def copy_tree(dst):
    """The source tree as a fresh clone has it: no build outputs, no data."""
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".git", "build", "bin", "var", "node_modules", "__pycache__", "*.pyc"))
    return dst


def shims(tmp, apt_rc=0):
    """
    A PATH on which the libraries are missing until apt-get has run: a
    pkg-config that fails for every module until a stand-in apt-get has
    "installed" them, then hands over to the real one. Nothing is really
    installed or removed. Returns (PATH, the file apt-get's calls go to).
    """
    d = os.path.join(tmp, "shims")
    os.mkdir(d)
    state = os.path.join(tmp, "installed")
    log = os.path.join(tmp, "apt.log")
    real = shutil.which("pkg-config")
    scripts = {
        "pkg-config": f"""#!/bin/sh
[ -e {state} ] && exec {real} "$@"
case "$1" in --version|--atleast-pkgconfig-version) exec {real} "$@" ;; esac
exit 1
""",
        "apt-get": f"""#!/bin/sh
echo "$@" >> {log}
case "$1" in install) [ {apt_rc} = 0 ] && touch {state} ;; esac
exit {apt_rc}
""",
        # Not root in some CI: the bootstrap calls apt-get through sudo -n.
        "sudo": """#!/bin/sh
[ "$1" = -n ] && shift
exec "$@"
""",
    }
    for name, text in scripts.items():
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    return d + ":" + os.environ["PATH"], log


def test_first_make_on_a_machine_without_the_packages(tmp):
    """The first `make` installs the libraries and links in the same run."""
    src = copy_tree(os.path.join(tmp, "src"))
    path, log = shims(tmp)
    p = subprocess.run(["make", "-j2", "-C", src], capture_output=True, text=True,
                       env=dict(CLEAN_ENV, PATH=path))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for b in ("notifyd", "notifyctl"):
        assert os.access(os.path.join(src, "bin", b), os.X_OK), b
    with open(log) as f:
        calls = f.read()
    assert "install" in calls and "libjansson-dev" in calls and "libcurl4-openssl-dev" in calls
    v = subprocess.run([os.path.join(src, "bin", "notifyd"), "--version"], capture_output=True,
                       text=True)
    assert v.returncode == 0 and v.stdout.startswith("notifyd ")


def test_no_apt_names_every_package_and_builds_nothing(tmp):
    """apt-get that cannot install: one message naming each package, no objects."""
    src = copy_tree(os.path.join(tmp, "src"))
    path, _ = shims(tmp, apt_rc=100)
    p = subprocess.run(["make", "-j2", "-C", src, "run"], capture_output=True, text=True,
                       env=dict(CLEAN_ENV, PATH=path))
    assert p.returncode != 0
    for pkg in ("libsqlite3-dev", "libjansson-dev", "libinih-dev", "libjwt-dev",
                "libcurl4-openssl-dev", "libgmime-3.0-dev", "libssl-dev"):
        assert pkg in p.stderr, (pkg, p.stderr)
    assert p.stderr.count("notifyd needs these packages") == 1, p.stderr
    assert not glob.glob(os.path.join(src, "build", "**", "*.o"), recursive=True)
    assert not os.path.exists(os.path.join(src, "bin"))


def bootstrap(tmp, deps, path):
    d = os.path.join(tmp, "tools")
    os.mkdir(d)
    shutil.copy(os.path.join(ROOT, "tools", "bootstrap.sh"), d)
    with open(os.path.join(d, "deps.txt"), "w") as f:
        f.write(deps)
    return subprocess.run(["/bin/sh", os.path.join(d, "bootstrap.sh"), "test"],
                          capture_output=True, text=True, env={"PATH": path})


def test_bootstrap_quiet_when_everything_is_there(tmp):
    p = bootstrap(tmp, "# comment\nbuild cmd:sh dash\ntest pc:sqlite3 libsqlite3-dev\n"
                       "build h:stdio.h libc6-dev\ntest py:json python3\n", os.environ["PATH"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_bootstrap_names_packages_without_apt(tmp):
    # A PATH with the tools the script uses but no apt-get: "another system".
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    for tool in ("sh", "pkg-config", "cc", "dirname", "id", "cat"):
        src = shutil.which(tool)
        if src:
            os.symlink(src, os.path.join(bindir, tool))
    p = bootstrap(tmp, "build cmd:sh dash\nbuild pc:no-such-lib-xyz libnosuch-dev\n"
                       "test cmd:no-such-tool-xyz nosuchtool\n", bindir)
    assert p.returncode == 1
    assert "libnosuch-dev nosuchtool" in p.stderr and "dash" not in p.stderr




def test_removed_inputs_leave_the_build(tmp):
    """A migration or source file removed is older than what was built from
    it; the build must drop it all the same, not keep the stale copy."""
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    for part in ("Makefile", "core", "cmd", "sql", "templates", "tools", "web", "man"):
        s = os.path.join(ROOT, part)
        (shutil.copytree if os.path.isdir(s) else shutil.copy)(s, os.path.join(src, part))

    # The default build, whatever flavour (SANITIZE=1) the suite runs under.
    env = CLEAN_ENV

    def build_and_version():
        p = subprocess.run(["make", "-s", "-j2", "-C", src, "bin/notifyd"],
                           capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return subprocess.run([os.path.join(src, "bin", "notifyd"), "--version"],
                              capture_output=True, text=True, check=True).stdout

    base = build_and_version()
    extra = os.path.join(src, "sql", "999_extra.sql")
    with open(extra, "w") as f:
        f.write("CREATE TABLE extra (x);\n")
    grown = build_and_version()
    os.remove(extra)
    assert build_and_version() == base != grown
    # A source file removed leaves the library too (its object is not archived).
    with open(os.path.join(src, "core", "extra.c"), "w") as f:
        f.write("int extra_symbol(void);\nint extra_symbol(void) { return 1; }\n")
    build_and_version()
    lib = os.path.join(src, "build", "default", "libnotifyd.a")
    names = lambda: subprocess.run(["ar", "t", lib], capture_output=True, text=True).stdout.split()
    assert "extra.o" in names()
    os.remove(os.path.join(src, "core", "extra.c"))
    build_and_version()
    assert "extra.o" not in names()


# The flavour the suite runs (make SANITIZE=1 test installs the sanitizer build).
FLAVOUR = ["SANITIZE=1"] if "/sanitize/" in os.environ.get("NOTIFYD_BIN", "") else []


def make_install(*args):
    p = subprocess.run(["make", "-s", "-C", ROOT, *FLAVOUR, *args], capture_output=True,
                       text=True, env=CLEAN_ENV)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d)
                  for r, _, fs in os.walk(d) for f in fs)


def test_install_run_and_uninstall(daemons, tmp):
    dest = os.path.join(tmp, "dest")
    where = ["DESTDIR=" + dest, "PREFIX=/usr", "SYSCONFDIR=/etc"]
    make_install("install", *where)
    assert files_under(dest) == sorted([
        "etc/notifyd/notifyd.conf", "usr/bin/notifyctl", "usr/sbin/notifyd",
        "usr/lib/systemd/system/notifyd.service",
        "usr/share/bash-completion/completions/notifyctl",
        "usr/share/man/man1/notifyctl.1", "usr/share/man/man5/notifyd.conf.5",
        "usr/share/man/man7/notifyd-api.7", "usr/share/man/man8/notifyd.8"])
    conf = os.path.join(dest, "etc/notifyd/notifyd.conf")
    with open(conf) as f:
        text = f.read()
    # Every key, commented out, and the file is one notifyd accepts as it is.
    keys = subprocess.run([os.path.join(dest, "usr/sbin/notifyd"), "--print-config"],
                          capture_output=True, text=True, check=True).stdout
    for line in keys.splitlines():
        if " = " in line and not line.startswith(";"):
            assert "; " + line.split(" = ")[0] + " = " in text, line
    assert not [l for l in text.splitlines() if l and l[0] not in ";["]
    chk = subprocess.run([os.path.join(dest, "usr/sbin/notifyd"), "--config", conf,
                          "--check-config"], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stderr

    # The installed binaries, from where they were installed.
    d = daemons(args=["--config", conf], binaries=(os.path.join(dest, "usr/sbin/notifyd"),
                                                   os.path.join(dest, "usr/bin/notifyctl")))
    d.start()
    assert d.ok("ping")["pong"] is True
    for page in glob.glob(os.path.join(dest, "usr/share/man/man*/*")):
        m = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        assert m.returncode == 0 and "NAME" in m.stdout, (page, m.stderr)

    out = make_install("uninstall", *where)
    assert files_under(dest) == [], out
    # A config the administrator changed stays where it is.
    make_install("install", *where)
    with open(conf, "a") as f:
        f.write("[http]\nlisten = 127.0.0.1:9000\n")
    out = make_install("uninstall", *where)
    assert files_under(dest) == ["etc/notifyd/notifyd.conf"] and "left in place" in out


def test_systemd_unit_verifies(tmp):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    prefix = os.path.join(tmp, "prefix")
    make_install("install", "PREFIX=" + prefix)
    unit = os.path.join(prefix, "lib/systemd/system/notifyd.service")
    with open(unit) as f:
        text = f.read()
    assert "Type=notify" in text
    for want in ("DynamicUser=yes", "StateDirectory=notifyd", "RuntimeDirectory=notifyd",
                 "ExecReload=", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "LimitNOFILE=", "ExecStart=" + os.path.join(prefix, "sbin/notifyd")):
        assert want in text, want
    v = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                       env=dict(os.environ, MANPATH=os.path.join(prefix, "share/man")))
    assert v.returncode == 0, v.stdout + v.stderr


def test_notifyctl_is_a_small_client():
    """notifyctl links the declarations, the protocol and jansson: none of
    the server's libraries (SQLite, libcurl, GMime, civetweb, OpenSSL)."""
    from conftest import NOTIFYCTL
    out = subprocess.run(["readelf", "-d", NOTIFYCTL], check=True,
                         capture_output=True, text=True).stdout
    needed = {line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line}
    # (make SANITIZE=1 adds the sanitizers' runtimes)
    assert {n.split(".so")[0] for n in needed} <= {"libjansson", "libc", "libasan",
                                                    "libubsan"}, needed
    # And the server's code is not in it: no handler, no store.
    syms = subprocess.run(["nm", NOTIFYCTL], check=True,
                          capture_output=True, text=True).stdout
    for name in ("store_open", "op_call", "hub_start", "sqlite3_open_v2"):
        assert " " + name + "\n" not in syms, name


# Debian 12's nodejs is 18.20: what bootstrap installs where node is missing.
DEBIAN_NODE_MAJOR = 18
# The test runner's options that Node 18.20 has (it lacks --test-timeout).
NODE_18_TEST_OPTIONS = {"--test", "--test-reporter", "--test-reporter-destination",
                        "--test-concurrency", "--test-name-pattern", "--test-only",
                        "--test-skip-pattern"}


def test_browser_tests_run_on_debian_12s_node():
    """On a bare Debian 12, bootstrap installs Debian's nodejs (18): the
    locked playwright-core must accept it, and tests/run.sh must start the
    browser tests with options it knows (a --test-timeout made `make test`
    fail there while Node 20 hid it here)."""
    import json
    import re
    lock = json.load(open(os.path.join(ROOT, "tests", "browser", "package-lock.json")))
    for name, pkg in lock["packages"].items():
        want = pkg.get("engines", {}).get("node")
        if want:
            m = re.fullmatch(r">=\s*(\d+)(\.\d+)*", want)
            assert m and int(m.group(1)) <= DEBIAN_NODE_MAJOR, (name, want)
    run = open(os.path.join(ROOT, "tests", "run.sh")).read()
    line = re.search(r"\bnode --test\b[^\n]*", run).group(0)
    used = set(re.findall(r"(--test[a-z-]*)", line))
    assert "--test" in used and used <= NODE_18_TEST_OPTIONS, used
