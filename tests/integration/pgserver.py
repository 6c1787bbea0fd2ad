"""A private PostgreSQL for the tests: initdb into a temporary directory,
pg_ctl on a Unix socket there and no TCP port, trust for local
connections, stopped and removed at the end. As root it runs as the
postgres user (initdb refuses root). Debian's postgresql package has it;
where it cannot be installed the tests that need it are skipped, saying
why."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def available():
    """None when a private server can be run here, else why not."""
    if not BINDIRS or not os.path.exists(os.path.join(BINDIRS[-1], "initdb")):
        return "PostgreSQL is not installed (Debian: postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the server as"
    return None


class Server:
    """One cluster, started; url() is what [store] url takes."""

    def __init__(self, fsync=False):
        self.fsync = fsync      # tests: off; benchmarks: on, durable as in production
        self.bindir = BINDIRS[-1]
        self.dir = tempfile.mkdtemp(prefix="notifyd-pg.")
        self.data = os.path.join(self.dir, "data")
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self):
        self.run("pg_ctl", "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                 "-c listen_addresses='' -k %s -c fsync=%s -c max_connections=200"
                 % (self.dir, "on" if self.fsync else "off"), "start")

    def halt(self):
        """Stop the server, as an outage would (fast: every session is cut)."""
        self.run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    def run(self, tool, *args):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                     (p.stderr or p.stdout).strip()[-1500:]))

    def psql(self, sql, db="postgres"):
        """Run sql; its rows, each a list of text fields."""
        out = subprocess.run([os.path.join(self.bindir, "psql"), "-h", self.dir, "-U", "postgres",
                              "-d", db, "-XAtq", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        return [line.split("\t") for line in out.splitlines()]

    def createdb(self, name):
        """A fresh database of its own for a test; its url."""
        self.psql("CREATE DATABASE %s" % name)
        return self.url(name)

    def url(self, db="postgres"):
        return "postgresql:///%s?host=%s&user=postgres" % (db, self.dir)

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
