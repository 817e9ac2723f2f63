"""Loopback etcd clusters for tests and benchmarks: start, break, heal, clean up.

    with EtcdCluster(3) as c:            # 3 members on 127.0.0.1, healthy on return
        c.endpoints                      # ["127.0.0.1:30141", ...] (client addresses)
        c.kill(0)                        # kill -9 member 0 (by pid); c.restart(0) brings it back
        c.stop(1); c.stop(2)             # quorum lost; c.restart(1) restores it
        c.put(b"/p/k", b"v"); c.range(b"/p/")   # raw bytes through the JSON gateway
        c.compact()                      # etcdctl compact --physical at the current revision
        c.enable_auth("/p/", ...)        # read-only role for daemons, read-write for admins

Every cluster gets ports from a per-run base (30000 + a random multiple of 20, checked free),
its own temp dir (data dirs, logs) and a unique --initial-cluster-token, so concurrent runs
never meet.  Members are only ever signalled by the pid this module started; each one also
gets PR_SET_PDEATHSIG(SIGKILL) so it dies with the test process even when that is killed
-9.  close() (the context manager, and atexit for anything left open) kills every member it
started and removes every directory it made, also on failure.  Run this file to self-test.

Stdlib only (urllib for the gateway, etcdctl for administration).
"""
import atexit
import base64
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ETCD = os.environ.get("SFS_ETCD", "/usr/bin/etcd")
ETCDCTL = os.environ.get("SFS_ETCDCTL", "/usr/bin/etcdctl")
_OPEN = []        # clusters not yet closed, for atexit
_libc = None


class EtcdError(Exception):
    pass


def available():
    """None if etcd and etcdctl can be run, else the reason (for an exit-77 skip)."""
    for prog in (ETCD, ETCDCTL):
        if not (os.path.isfile(prog) and os.access(prog, os.X_OK)):
            return "%s not found (apt-get install etcd-server etcd-client)" % prog
    return None


def _pdeathsig():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    os.setpgid(0, 0)                 # own group: a terminal's ^C reaches only the test


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_base(count):
    for _ in range(200):
        base = 30000 + 20 * random.randrange(0, 1500)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise EtcdError("no free block of %d loopback ports found above 30000" % count)


def prefix_end(prefix):
    """The range_end that selects every key starting with `prefix` (bytes)."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


def _b64(b):
    return base64.b64encode(b).decode()


class Member:
    def __init__(self, cluster, i, client_port, peer_port):
        self.cluster = cluster
        self.i = i
        self.name = "m%d" % i
        self.client_port = client_port
        self.peer_port = peer_port
        self.endpoint = "127.0.0.1:%d" % client_port
        self.url = "http://" + self.endpoint
        self.peer_url = "http://127.0.0.1:%d" % peer_port
        self.data_dir = os.path.join(cluster.dir, self.name + ".data")
        self.log = os.path.join(cluster.dir, self.name + ".log")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def argv(self):
        c = self.cluster
        return [ETCD, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", c.initial_cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", c.token,
                "--experimental-watch-progress-notify-interval", "1s",
                "--auth-token", "simple", "--auth-token-ttl", str(c.auth_token_ttl),
                "--logger=zap", "--log-outputs=" + self.log,
                # fast elections on loopback, so a killed leader is replaced in well under 1 s
                "--heartbeat-interval", "50", "--election-timeout", "500",
                ] + list(c.extra_args)

    def start(self):
        if self.running():
            raise EtcdError("%s is already running (pid %d)" % (self.name, self.pid))
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_pdeathsig, close_fds=True)

    def signal(self, sig):
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=15.0):
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)

    def healthy(self, timeout=1.0):
        """True if this member answers /health with health=true (it has a leader)."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=timeout) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _request_length(buf):
    """The length of the HTTP/1.1 request at the start of `buf` (headers and a
    Content-Length body), None until its headers are in, or len(buf) for a body without a
    length (chunked: not framed, passed through)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = None
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return end + 4 + length if length is not None else len(buf)


def txn_touching(key):
    """A request matcher for TcpProxy.fault: a POST /v3/kv/txn that names `key` (bytes)
    anywhere in its body (a compare, a put or a delete): with a prefix's commit key, exactly
    the commit txns of secretfs's writer."""
    needle = _b64(key).encode()
    return lambda req: req.startswith(b"POST /v3/kv/txn ") and needle in req


def txn_not_touching(key):
    """A POST /v3/kv/txn that does not name `key`: with the commit key, the staging txns."""
    needle = _b64(key).encode()
    return lambda req: req.startswith(b"POST /v3/kv/txn ") and needle not in req


class _Fault:
    def __init__(self, match, action, hook, skip, count):
        self.match, self.action, self.hook = match, action, hook
        self.skip, self.left = skip, count
        self.fired = 0
        self.held = None          # set when a "hold" fault holds a request
        self.release_evt = None


class _Pair:
    """One proxied connection: the client's socket, the member's, and the request being
    framed (client -> member) while a fault is armed."""

    def __init__(self, client, upstream):
        self.client, self.up = client, upstream
        self.buf = b""
        self.sent = 0             # bytes of buf already forwarded
        self.holding = False      # this request is kept until it is whole (a fault is armed)
        self.drop_answer = None   # the fault whose request went out: drop its answer


class TcpProxy:
    """A loopback TCP forwarder to one member, for partitions the member itself does not
    see: cut() drops every connection and closes each new one at once (the client sees a
    reset, as from a host it cannot reach) until heal().  Counts the bytes it forwards
    each way (down: member -> client).  Its port comes from the kernel (bind to 0).

    fault(match, action) arms a fault for one HTTP request (framed by Content-Length) whose
    bytes satisfy match(bytes) (txn_touching(commit_key): a commit txn):
      "drop_answer"   forward it, let the member apply it, then reset the client's
                      connection instead of forwarding the answer (a lost answer); hook()
                      runs first, once the answer is there (the change is applied)
      "drop_request"  hook() (e.g. kill -9 of the client), then reset the connection without
                      forwarding anything (a crash just before the request)
      "hold"          keep the request until release(fault), then forward it
    skip=N lets the first N matching requests through; count=N arms it N times."""

    def __init__(self, target_port):
        import threading
        self._threading = threading
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.endpoint = "127.0.0.1:%d" % self.port
        self.blocked = False
        self.closed = False
        self.bytes_down = self.bytes_up = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._conns = []
        self._faults = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def fault(self, match, action, hook=None, skip=0, count=1):
        """Arms a request fault (see the class comment); returns it (.fired counts)."""
        assert action in ("drop_answer", "drop_request", "hold"), action
        f = _Fault(match, action, hook, skip, count)
        if action == "hold":
            f.release_evt = self._threading.Event()
            f.held = self._threading.Event()
        with self._lock:
            self._faults.append(f)
        return f

    def wait_held(self, f, timeout=30):
        """Waits until the "hold" fault `f` holds a request."""
        if not f.held.wait(timeout):
            raise EtcdError("no request matched the hold fault within %d s" % timeout)

    def release(self, f):
        f.release_evt.set()

    def _take_fault(self, req):
        with self._lock:
            for f in self._faults:
                if f.left > 0 and f.match(req):
                    if f.skip > 0:
                        f.skip -= 1
                        return None
                    f.left -= 1
                    f.fired += 1
                    if f.left == 0:
                        self._faults.remove(f)
                    return f
        return None

    def _accept_loop(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.blocked or self.closed:
                self._reset(c)
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            pair = _Pair(c, u)
            with self._lock:
                self.accepted += 1
                self._conns += [c, u]
            self._threading.Thread(target=self._pump_up, args=(pair,), daemon=True).start()
            self._threading.Thread(target=self._pump_down, args=(pair,), daemon=True).start()

    @staticmethod
    def _reset(s):
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()

    def _forward_request(self, pair, req):
        """A whole held request: applies the fault it matches, if any.  False: the
        connection was reset."""
        f = self._take_fault(req)
        if f and f.action == "drop_request":
            if f.hook:
                f.hook()
            self._reset(pair.client)
            self._reset(pair.up)
            return False
        if f and f.action == "hold":
            f.held.set()
            f.release_evt.wait()
        if f and f.action == "drop_answer":
            pair.drop_answer = f
        pair.up.sendall(req)
        return True

    def _frame(self, pair, data):
        """Forwards what the client sent, request by request.  False: reset."""
        if not pair.buf:
            with self._lock:
                pair.holding = bool(self._faults)
        pair.buf += data
        while pair.buf:
            n = _request_length(pair.buf)
            if n is None or len(pair.buf) < n:
                if not pair.holding:
                    pair.up.sendall(pair.buf[pair.sent:])
                    pair.sent = len(pair.buf)
                return True
            req, pair.buf = pair.buf[:n], pair.buf[n:]
            if pair.holding:
                if not self._forward_request(pair, req):
                    return False
            elif pair.sent < n:
                pair.up.sendall(req[pair.sent:])
            pair.sent = max(0, pair.sent - n)
            with self._lock:
                pair.holding = pair.sent == 0 and bool(self._faults)
        return True

    def _pump_up(self, pair):
        try:
            while True:
                data = pair.client.recv(65536)
                if not data:
                    break
                with self._lock:
                    self.bytes_up += len(data)
                if not self._frame(pair, data):
                    return
        except OSError:
            pass
        for s_ in (pair.client, pair.up):
            with contextlib.suppress(OSError):
                s_.shutdown(socket.SHUT_RDWR)

    def _pump_down(self, pair):
        try:
            while True:
                data = pair.up.recv(65536)
                if not data:
                    break
                f = pair.drop_answer
                if f:
                    if f.hook:
                        f.hook()
                    self._reset(pair.client)
                    self._reset(pair.up)
                    return
                with self._lock:
                    self.bytes_down += len(data)
                pair.client.sendall(data)
        except OSError:
            pass
        for s_ in (pair.up, pair.client):
            with contextlib.suppress(OSError):
                s_.shutdown(socket.SHUT_RDWR)

    def cut(self):
        """Drops every connection now and refuses new ones until heal()."""
        self.blocked = True
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            self._reset(c)

    def heal(self):
        self.blocked = False

    def close(self):
        self.closed = True
        with self._lock:
            faults, self._faults = self._faults, []
        for f in faults:
            if f.release_evt:
                f.release_evt.set()
        self.cut()
        with contextlib.suppress(OSError):
            self.lsock.close()


class EtcdCluster:
    """An n-member etcd cluster on loopback.  Use as a context manager (or call close())."""

    def __init__(self, n=3, auth_token_ttl=300, extra_args=(), parent_dir=None,
                 start=True, timeout=30.0):
        reason = available()
        if reason:
            raise EtcdError(reason)
        self.n = n
        self.auth_token_ttl = auth_token_ttl
        self.extra_args = tuple(extra_args)
        self.dir = tempfile.mkdtemp(prefix="sfs-etcd-", dir=parent_dir)
        self.token = "sfs-%d-%s" % (os.getpid(), os.urandom(6).hex())
        self.base = _pick_base(2 * n)
        self.members = [Member(self, i, self.base + 2 * i, self.base + 2 * i + 1)
                        for i in range(n)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        self.root_password = None     # set by enable_auth; etcdctl/gateway then log in as root
        self.proxies = []
        self._tokens = {}
        self._closed = False
        _OPEN.append(self)
        if start:
            try:
                self.start(timeout)
            except BaseException:
                self.close()
                raise

    # ---- lifecycle ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self, timeout=30.0):
        for m in self.members:
            if not m.running():
                m.start()
        self.wait_healthy(timeout=timeout)

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def location(self, prefix, members=None):
        """etcd://HOST:PORT[,...]/PREFIX for secretfs; members: indexes (default all)."""
        idx = range(self.n) if members is None else members
        return "etcd://%s/%s" % (",".join(self.members[i].endpoint for i in idx),
                                 prefix.lstrip("/"))

    def proxy(self, i):
        """A TcpProxy to member i (closed with the cluster)."""
        p = TcpProxy(self.members[i].client_port)
        self.proxies.append(p)
        return p

    def wait_healthy(self, members=None, timeout=30.0):
        """Waits until every listed member (default: all) reports health=true."""
        idx = list(range(self.n) if members is None else members)
        deadline = time.monotonic() + timeout
        while True:
            pending = [i for i in idx if not self.members[i].healthy()]
            if not pending:
                return
            for i in pending:
                m = self.members[i]
                if m.proc is not None and m.proc.poll() is not None:
                    raise EtcdError("%s exited %s while starting; log %s: %s" % (
                        m.name, m.proc.returncode, m.log, m.log_text()[-1500:]))
            if time.monotonic() > deadline:
                raise EtcdError("members %s not healthy after %.0f s (logs in %s)" % (
                    ",".join(self.members[i].name for i in pending), timeout, self.dir))
            time.sleep(0.05)

    def kill(self, i):
        """kill -9 of member i (its pid); returns once it is gone."""
        m = self.members[i]
        m.signal(signal.SIGKILL)
        m.wait_exit()

    def stop(self, i, timeout=15.0):
        """SIGTERM to member i, then waits (SIGKILL after `timeout`)."""
        m = self.members[i]
        m.signal(signal.SIGTERM)
        m.wait_exit(timeout)

    def restart(self, i, wait=True, timeout=30.0):
        """Starts member i again on its data dir (it rejoins); waits for it to be healthy,
        which needs a quorum of running members."""
        m = self.members[i]
        if m.running():
            self.stop(i)
        m.start()
        if wait:
            self.wait_healthy([i], timeout=timeout)

    def lose_quorum(self, keep=0):
        """Stops every member but `keep` (kill -9); returns the indexes stopped."""
        stopped = [i for i in range(self.n) if i != keep]
        for i in stopped:
            self.kill(i)
        return stopped

    def running(self):
        return [i for i, m in enumerate(self.members) if m.running()]

    def close(self):
        if self._closed:
            return
        self._closed = True
        for p in self.proxies:
            with contextlib.suppress(Exception):
                p.close()
        for m in self.members:
            m.signal(signal.SIGKILL)
        for m in self.members:
            with contextlib.suppress(Exception):
                m.wait_exit(10)
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _OPEN.remove(self)

    # ---- etcdctl ----

    def _live_endpoint(self, member):
        if member is not None:
            return self.members[member].endpoint
        for m in self.members:
            if m.running():
                return m.endpoint
        raise EtcdError("no member is running")

    def etcdctl(self, args, member=None, user=None, input=None, check=True, timeout=30,
                endpoints=None):
        """Runs etcdctl (API v3) against one member (default: the first running one) or
        `endpoints`; user='root' uses the root password once auth is on, else 'NAME:PW'."""
        eps = ",".join(endpoints) if endpoints else self._live_endpoint(member)
        argv = [ETCDCTL, "--endpoints", eps, "--dial-timeout", "3s",
                "--command-timeout", "%ds" % max(1, timeout - 5)]
        if user == "root" or (user is None and self.root_password):
            if self.root_password:
                argv += ["--user", "root:" + self.root_password]
        elif user:
            argv += ["--user", user]
        env = dict(os.environ, ETCDCTL_API="3")
        # A loaded machine can make a member miss its election timeout: etcd then answers
        # "request timed out" though the request may have been applied.  Retry such
        # answers, and take "already exists" on a retry as the first try's success.
        for attempt in range(4):
            p = subprocess.run(argv + list(args), input=input, capture_output=True, env=env,
                               timeout=timeout)
            err = p.stderr.decode(errors="replace")
            if p.returncode == 0 or ("request timed out" not in err and
                                     "Unavailable" not in err):
                break
            time.sleep(0.5 * (attempt + 1))
        if p.returncode != 0 and attempt > 0 and "already exists" in err:
            return p
        if check and p.returncode != 0:
            raise EtcdError("etcdctl %s exited %d: %s" % (
                " ".join(a for a in args if not a.startswith("--new-user-password")),
                p.returncode, p.stderr.decode(errors="replace")[-800:]))
        return p

    # ---- the JSON gateway, raw bytes ----

    def _post(self, path, body, member=None, user=None, timeout=10.0, retry=10.0):
        """POSTs to the gateway; retries for up to `retry` seconds while the cluster says
        it is electing a leader (503) or a member is unreachable (0: never retry)."""
        deadline = time.monotonic() + retry
        while True:
            try:
                return self._post_once(path, body, member, user, timeout)
            except (EtcdError, OSError) as e:
                transient = isinstance(e, OSError) or " 503: " in str(e)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _post_once(self, path, body, member, user, timeout):
        url = "http://%s/v3/%s" % (self._live_endpoint(member), path)
        headers = {"Content-Type": "application/json"}
        tok = self._token(user, member) if (user or self.root_password) else None
        if tok:
            headers["Authorization"] = tok
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            if tok and "token" in text:
                self._tokens.clear()                   # expired: log in again once
                headers["Authorization"] = self._token(user, member)
                req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return json.loads(r.read() or b"{}")
            raise EtcdError("POST /v3/%s: HTTP %d: %s" % (path, e.code, text[:500]))

    def _token(self, user, member):
        """A simple token for 'NAME:PW' (or root), cached until refused."""
        cred = user or ("root:" + self.root_password)
        key = (cred.split(":", 1)[0], self._live_endpoint(member))  # simple tokens are per member
        if key not in self._tokens:
            name, _, pw = cred.partition(":")
            url = "http://%s/v3/auth/authenticate" % self._live_endpoint(member)
            req = urllib.request.Request(url, data=json.dumps(
                {"name": name, "password": pw}).encode(), method="POST",
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self._tokens[key] = json.loads(r.read())["token"]
        return self._tokens[key]

    def range(self, prefix, member=None, user=None, revision=None):
        """{key: value} (bytes) of every key starting with `prefix` (None: every key in
        the cluster), and the revision."""
        if prefix is None:
            body = {"key": _b64(b"\0"), "range_end": _b64(b"\0")}
        else:
            body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        if revision:
            body["revision"] = str(revision)
        r = self._post("kv/range", body, member, user)
        kvs = {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", ""))
               for kv in r.get("kvs", [])}
        return kvs, int(r["header"]["revision"])

    def put(self, key, value, member=None, user=None, retry=10.0):
        """Puts raw bytes; returns the new revision."""
        r = self._post("kv/put", {"key": _b64(key), "value": _b64(value)}, member, user,
                       retry=retry)
        return int(r["header"]["revision"])

    def put_many(self, kvs, member=None, user=None):
        """Puts {key: value} in one transaction (one revision); returns it."""
        ops = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in kvs.items()]
        r = self._post("kv/txn", {"success": ops}, member, user)
        return int(r["header"]["revision"])

    def delete(self, key, prefix=False, member=None, user=None):
        body = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        return int(self._post("kv/deleterange", body, member, user)["header"]["revision"])

    def revision(self, member=None):
        r = self._post("kv/range", {"key": _b64(b"\0"), "count_only": True}, member)
        return int(r["header"]["revision"])

    def compact(self, revision=None, member=None):
        """Compacts (physically) at `revision` (default: the current one); returns it."""
        rev = revision or self.revision(member)
        self.etcdctl(["compact", str(rev), "--physical"], member=member)
        return rev

    # ---- auth ----

    def enable_auth(self, prefix, readers=(), writers=(), root_password=None):
        """Turns on etcd auth: a role `sfs-ro` with read on `prefix`, `sfs-rw` with
        readwrite, the users in `readers`/`writers` ("NAME:PASSWORD") granted them, and root.
        Afterwards this object talks to the cluster as root."""
        pw = root_password or os.urandom(9).hex()
        end = prefix_end(prefix.encode()).decode("latin-1")
        self.etcdctl(["user", "add", "root", "--new-user-password=" + pw])
        self.etcdctl(["user", "grant-role", "root", "root"], check=False)
        for role, perm in (("sfs-ro", "read"), ("sfs-rw", "readwrite")):
            self.etcdctl(["role", "add", role])
            self.etcdctl(["role", "grant-permission", role, perm, prefix, end])
        for users, role in ((readers, "sfs-ro"), (writers, "sfs-rw")):
            for cred in users:
                name, _, upw = cred.partition(":")
                self.etcdctl(["user", "add", name, "--new-user-password=" + upw])
                self.etcdctl(["user", "grant-role", name, role])
        self.etcdctl(["auth", "enable"])
        self.root_password = pw
        self._tokens.clear()

    # ---- secretfs's keys under a prefix (README "etcd store (version 1)") ----

    RECLAIM_SLACK = 3600    # store/etcd.h SFS_ETCD_RECLAIM_SLACK

    def generations(self, prefix):
        """{GEN: {"values": n, "bytes": b, "mark": bytes or None}} of every generation
        under `prefix` (str or bytes, ending in "/"): PREFIX g/GEN/ID are value blobs,
        PREFIX g/GEN the mark ("START BUDGET") of a generation staged but not committed."""
        p = prefix.encode() if isinstance(prefix, str) else prefix
        out = {}
        for k, v in self.range(p + b"g/")[0].items():
            gen, _, vid = k[len(p) + 2:].partition(b"/")
            g = out.setdefault(gen.decode(), {"values": 0, "bytes": 0, "mark": None})
            if vid:
                g["values"] += 1
                g["bytes"] += len(v)
            else:
                g["mark"] = v
        return out

    def abandon(self, prefix, gen, late=1):
        """Backdates the staging mark of generation `gen` to `late` seconds past its
        writer's budget and the reclaim slack: a writer then sees it as abandoned, as if its
        stager had died long ago (or its clock were far behind)."""
        p = prefix.encode() if isinstance(prefix, str) else prefix
        key = p + b"g/" + gen.encode()
        mark = self.range(key)[0][key]
        budget = int(mark.split()[1])
        self.put(key, b"%d %d" % (int(time.time()) - budget - self.RECLAIM_SLACK - late,
                                  budget))

    def add_user(self, name, password, role):
        """Adds user `name` with `role` through the gateway as root (auth must be on): the
        password never appears on a command line (etcdctl would take it in argv)."""
        self._post("auth/user/add", {"name": name, "password": password})
        self._post("auth/user/grant", {"user": name, "role": role})

    # ---- inspection ----

    def data_files(self):
        """Every regular file under the members' data dirs."""
        out = []
        for m in self.members:
            for root, _, files in os.walk(m.data_dir):
                out.extend(os.path.join(root, f) for f in files)
        return out

    def grep_data(self, needles):
        """{needle: [files]} for every needle (bytes) found in any data dir file."""
        found = {}
        groups = {}                 # needles by their first 5 bytes: one scan per group
        for n in needles:
            groups.setdefault(n[:5], []).append(n)
        for path in self.data_files():
            try:
                with open(path, "rb") as f:
                    data = f.read().rstrip(b"\0")   # WAL files are preallocated zeros
            except OSError:
                continue
            for head, group in groups.items():
                if head not in data:
                    continue
                for n in group:
                    if n in data:
                        found.setdefault(n, []).append(path)
        return found

    def logs(self):
        return "".join(m.log_text() for m in self.members)


@atexit.register
def _close_all():
    for c in list(_OPEN):
        with contextlib.suppress(Exception):
            c.close()


def cleanup_on_signals():
    """Makes SIGTERM/SIGHUP (meson's timeout, a closed terminal) run the cleanup: they
    raise SystemExit, so context managers and atexit run.  Call once from a test's main."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


# ---- self-test: python3 tests/lib/etcd_cluster.py ----

def _selftest():
    cleanup_on_signals()
    t0 = time.monotonic()
    with EtcdCluster(3, auth_token_ttl=2) as c:
        print("3 members healthy in %.2f s on %s" % (time.monotonic() - t0,
                                                     ",".join(c.endpoints)))
        pids = [m.pid for m in c.members]
        rev = c.put(b"/t/a", b"\x00\xffbinary", member=0)
        kvs, rev2 = c.range(b"/t/", member=2)
        assert kvs == {b"/t/a": b"\x00\xffbinary"} and rev2 >= rev, kvs
        rev = c.put_many({b"/t/b": b"1", b"/t/c": b"2"}, member=1)
        assert len(c.range(b"/t/")[0]) == 3
        # kill -9 one member: the others keep quorum; it rejoins on restart
        c.kill(0)
        assert not c.members[0].running() and c.members[1].running()
        c.put(b"/t/d", b"x", member=1)
        c.restart(0)
        assert c.range(b"/t/", member=0)[0][b"/t/d"] == b"x"
        # quorum loss: one member left cannot serve a linearizable read or a write
        stopped = c.lose_quorum(keep=2)
        try:
            c.put(b"/t/e", b"y", member=2, retry=0)
            raise AssertionError("a write succeeded without quorum")
        except (EtcdError, OSError):
            pass
        for i in stopped:
            c.restart(i, wait=False)
        c.wait_healthy()
        c.put(b"/t/e", b"y", member=0)
        # compaction
        old = c.revision()
        c.put(b"/t/a", b"new")
        c.compact()
        try:
            c.range(b"/t/", revision=old)
            raise AssertionError("a compacted revision was served")
        except EtcdError as e:
            assert "compacted" in str(e), str(e)
        # auth: a reader cannot write, a writer can, tokens expire after 2 s and are renewed
        c.enable_auth("/t/", readers=["ro:rpw"], writers=["rw:wpw"])
        assert c.range(b"/t/", user="ro:rpw")[0][b"/t/a"] == b"new"
        try:
            c.put(b"/t/f", b"z", user="ro:rpw")
            raise AssertionError("the read-only user wrote")
        except EtcdError as e:
            assert "permission denied" in str(e), str(e)
        c.put(b"/t/f", b"z", user="rw:wpw")
        p = c.etcdctl(["put", "/t/g", "z"], user="ro:rpw", check=False)
        assert p.returncode != 0 and b"permission denied" in p.stderr, p.stderr
        time.sleep(3)   # self-test only: let the simple token expire
        assert c.range(b"/t/", user="rw:wpw")[0][b"/t/f"] == b"z"
        assert c.grep_data([b"binary"]), "data dirs not searched"
        # a proxy forwards, counts, cuts and heals
        px = c.proxy(1)
        url = "http://%s/health" % px.endpoint
        assert b"true" in urllib.request.urlopen(url, timeout=5).read()
        assert px.bytes_down > 0
        px.cut()
        try:
            urllib.request.urlopen(url, timeout=5).read()
            raise AssertionError("a cut proxy forwarded")
        except OSError:
            pass
        px.heal()
        assert b"true" in urllib.request.urlopen(url, timeout=5).read()
        # a lost answer: the member applies the txn, the client sees a reset
        f = px.fault(txn_touching(b"/t/lost"), "drop_answer")
        body = json.dumps({"success": [{"request_put": {"key": _b64(b"/t/lost"),
                                                        "value": _b64(b"1")}}]}).encode()
        req = urllib.request.Request("http://%s/v3/kv/txn" % px.endpoint, data=body,
                                     method="POST", headers={
                                         "Content-Type": "application/json",
                                         "Authorization": c._token(None, 1)})
        try:
            urllib.request.urlopen(req, timeout=5).read()
            raise AssertionError("a dropped answer arrived")
        except OSError:
            pass
        assert f.fired == 1 and c.range(b"/t/lost")[0] == {b"/t/lost": b"1"}
        # a request dropped before the member saw it
        f = px.fault(txn_touching(b"/t/never"), "drop_request")
        req = urllib.request.Request(req.full_url, data=body.replace(
            _b64(b"/t/lost").encode(), _b64(b"/t/never").encode()), method="POST",
            headers=req.headers)
        try:
            urllib.request.urlopen(req, timeout=5).read()
            raise AssertionError("a dropped request was answered")
        except OSError:
            pass
        assert f.fired == 1 and c.range(b"/t/never")[0] == {}
        d = c.dir
    assert not os.path.exists(d), "cluster dir left behind"
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or open(
            "/proc/%d/stat" % pid).read().split()[2] == "Z", "member %d survived" % pid
    print("etcd_cluster self-test ok in %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    import sys
    if available():
        print("SKIP:", available())
        sys.exit(77)
    _selftest()
