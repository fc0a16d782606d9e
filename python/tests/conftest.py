"""A loopback Loom cluster for the Python tests: one loom-mds and three loom-ds, started once
per pytest session from the build's binaries ($LOOM_BUILD_DIR, default <repo>/build), on free
ports (port 0; each prints its port in its ready line), in a temporary directory. The flags
are the ones scripts/loom-cluster.sh uses."""
import os
import re
import selectors
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LOOM_BUILD_DIR", REPO / "build"))
READY_TIMEOUT_S = 60


class Server:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.log_path = log_path
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.log = open(log_path, "wb")
        self.port = self._wait_ready()
        # Keep draining its output so a chatty server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._copy_rest, daemon=True)
        self._drain.start()

    def _wait_ready(self):
        """Reads the server's output until its ready line, which carries the port."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.log.write(chunk)
            self.log.flush()
            buf += chunk
            m = re.search(rb"%s ready: .* port (\d+)" % self.name.encode(), buf)
            if m:
                return int(m.group(1))
        self.stop()
        raise RuntimeError("%s did not start; its output:\n%s"
                           % (self.name, Path(self.log_path).read_text(errors="replace")))

    def _copy_rest(self):
        for chunk in iter(lambda: os.read(self.proc.stdout.fileno(), 65536), b""):
            self.log.write(chunk)
            self.log.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, root, n_ds=3):
        self.root = Path(root)
        mds_bin = BUILD / "apps/loom-mds/loom-mds"
        ds_bin = BUILD / "apps/loom-ds/loom-ds"
        for b in (mds_bin, ds_bin):
            if not b.exists():
                raise RuntimeError("%s is not built (ninja -C %s loom-mds loom-ds)" % (b, BUILD))
        exports = self.root / "mds.exports"
        exports.write_text("127.0.0.0/8(rw,no_root_squash)\n")
        self.servers = []
        try:
            ds_addrs = []
            for i in range(n_ds):
                (self.root / ("ds%d" % i)).mkdir()
                s = Server("loom-ds",
                           [str(ds_bin), "--root", str(self.root / ("ds%d" % i)),
                            "--state-dir", str(self.root / ("ds%d.state" % i)),
                            "--listen", "127.0.0.1:0", "--mds", "127.0.0.1"],
                           self.root / ("ds%d.log" % i))
                self.servers.append(s)
                ds_addrs += ["--ds", "127.0.0.1:%d" % s.port]
            self.mds = Server("loom-mds",
                              [str(mds_bin), "--state-dir", str(self.root / "mds"),
                               "--listen", "127.0.0.1:0", "--lease", "10",
                               "--exports", str(exports)] + ds_addrs,
                              self.root / "mds.log")
            self.servers.append(self.mds)
        except BaseException:
            self.stop()
            raise
        self.address = "127.0.0.1:%d" % self.mds.port

    def stop(self):
        for s in reversed(self.servers):
            s.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("loom-cluster"))
    yield c
    c.stop()


@pytest.fixture(scope="session")
def client(cluster):
    import loom
    c = loom.Client(mds=cluster.address)
    yield c
    c.close()


@pytest.fixture
def tmpdir_loom(client, request):
    """A fresh directory in the cluster for one test."""
    path = "/t-%s-%d" % (re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60], os.getpid())
    client.makedirs(path, exist_ok=True)
    return path
