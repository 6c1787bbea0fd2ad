"""The man pages document what the tables declare: every setting, flag, command and metric."""
import os
import re
import subprocess

import pytest
import requests

from conftest import NOTIFYCTL, NOTIFYD

pytestmark = pytest.mark.no_valgrind  # the build and the docs, not the daemon's memory

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def man(name):
    """A man page's source, with escaped hyphens made plain."""
    with open(os.path.join(ROOT, "man", name)) as f:
        return f.read().replace("\\-", "-")


def settings():
    """(section, key, default) of every setting, from notifyd itself."""
    out = subprocess.run([NOTIFYD, "--print-config"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, check=True).stdout
    section = None
    for line in out.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line:
            key, value = line.split(" = ", 1)
            yield section, key, value


def test_every_setting_in_notifyd_conf_5():
    page = man("notifyd.conf.5")
    sections = re.split(r"^\.Ss ", page, flags=re.M)
    by_section = {s.split("\n", 1)[0].strip("[]"): s for s in sections[1:]}
    for section, key, default in settings():
        assert section in by_section, "notifyd.conf.5 lacks .Ss [%s]" % section
        text = by_section[section]
        m = re.search(r"^\.It Cm %s Ns = .*?(?=^\.It |^\.El)" % re.escape(key), text, re.M | re.S)
        assert m, "notifyd.conf.5 lacks [%s] %s" % (section, key)
        # Static defaults are quoted; computed ones (paths) are described.
        if not default.startswith("/"):
            assert default in m.group(0), "[%s] %s: default %s not documented" % (section, key, default)


def test_every_flag_in_notifyd_8():
    page = man("notifyd.8")
    help_text = subprocess.run([NOTIFYD, "--help"], capture_output=True, text=True).stdout
    for flag in set(re.findall(r"^  (--[a-z-]+)", help_text, re.M)):
        assert "Fl " + flag[1:] in page, "notifyd.8 lacks " + flag  # .Fl adds one dash


def test_every_metric_in_api_7(daemons):
    d = daemons(http=True).start()
    text = requests.get(d.url + "/metrics", timeout=10).text
    names = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert len(names) > 15
    page = man("notifyd-api.7")
    for name, kind in names:
        assert re.search(r"^\.It Li %s Pq %s$" % (name, kind), page, re.M), \
            "notifyd-api.7 lacks metric %s (%s)" % (name, kind)


def test_every_command_in_notifyctl_1_and_api_7():
    ctl, api = man("notifyctl.1"), man("notifyd-api.7")
    help_text = subprocess.run([NOTIFYCTL, "help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z]+(?: [a-z]+)?) {2,}", help_text, re.M)
    assert "send" in commands
    for cmd in commands:
        assert re.search(r"^\.It Cm %s\b" % cmd, ctl, re.M), "notifyctl.1 lacks " + cmd
        if cmd in ("help", "demo"):     # notifyctl's own, not operations
            continue
        op = cmd.replace(" ", ".")  # the protocol names operations with dots
        assert re.search(r"^\.It (.*, )?Cm %s\b" % re.escape(op), api, re.M), "notifyd-api.7 lacks " + op
        # Every flag of the command is in its entry.
        usage = subprocess.run([NOTIFYCTL, "help", *cmd.split()], capture_output=True,
                               text=True).stdout.splitlines()[0]
        entry = re.search(r"^\.It Cm %s\b.*" % cmd, ctl, re.M).group(0)
        for flag in re.findall(r"--([a-z-]+)", usage):
            assert "Fl -" + flag in entry, "notifyctl.1: %s lacks --%s" % (cmd, flag)
