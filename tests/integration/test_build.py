"""The build around the code: bootstrap of dependencies, install."""
import os
import shutil
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


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


def test_make_install(tmp):
    dest = os.path.join(tmp, "dest")
    env = dict(os.environ)
    p = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    for f in ("usr/sbin/notifyd", "usr/bin/notifyctl", "usr/share/man/man8/notifyd.8",
              "usr/share/man/man1/notifyctl.1", "usr/share/man/man5/notifyd.conf.5",
              "usr/share/man/man7/notifyd-api.7"):
        assert os.path.exists(os.path.join(dest, f)), f
    p = subprocess.run([os.path.join(dest, "usr/sbin/notifyd"), "--version"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("notifyd ")


def test_removed_inputs_leave_the_build(tmp):
    """A migration or source file removed is older than what was built from
    it; the build must drop it all the same, not keep the stale copy."""
    src = os.path.join(tmp, "src")
    os.mkdir(src)
    for part in ("Makefile", "core", "cmd", "sql", "templates", "tools"):
        s = os.path.join(ROOT, part)
        (shutil.copytree if os.path.isdir(s) else shutil.copy)(s, os.path.join(src, part))

    # The default build, whatever flavour (SANITIZE=1) the suite runs under.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SANITIZE")}

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
