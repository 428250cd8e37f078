"""The one place where untrusted generated code runs: a contained process per program (rewards.py scores
completions with it). The code that runs inside that process is harness.py.

Design. `run_tests(program, tests)` runs ONE contained process per program (the official code starts one
`python3 -c program+assert` per assert, see bench/sandbox.py). A harness in it execs the program in a fresh
`__main__`, then each test (one assert statement, compiled before the program runs) on its own, catching
everything including SystemExit, so a failing test hides no other. A test passes only if the harness saw its
exec return. Results travel over a private pipe as lines carrying a per-run random nonce (sent on stdin, never
on the command line), never over stdout, and only from the harness's own pid, so prints, blind writes to every
fd and forked children report nothing. After the program ran, the harness calls only privately bound functions
and formats records without any builtin lookup, so patching `builtins` (AssertionError, exec, str,
__import__ ...) cannot turn a failure into a pass. Exiting early (os._exit, sys.exit, exit(), a signal) fails the unseen
tests; at the top level, even after the definitions, it is a program that did not load: 'error'.

Fork server (SERVER = True). Starting an interpreter costs more than most programs run, so each thread
that calls run_tests gets its own fork server: a separate `python -I -S -B` (never a fork of the
caller, which may hold torch threads) with the harness loaded, which forks a fresh harness per program.
SERVER = False starts a fresh interpreter per program: the fallback, and the reference the fork server
is tested against (same verdicts, sys.argv, environment, signal dispositions). Children of one server
share its hash seed, so str/set order is the same across that worker's programs.

Containment (harness.py's docstring has the details): where permitted, the harness unshares network, IPC, mount
and PID namespaces, applies the rlimits below, drops to SANDBOX_UID when root, and shows the program a private
read-only view of the filesystem (PRIVATE_FS, HIDDEN, DISK_MB); a timeout kills its whole process tree.
`isolation` records what the last run had: net, pid, ipc, mount, proc (its own /proc), read_any (may read every
file the caller can), uid, hidden (the directories it saw empty).

Threat model: guard rails against reward hacking by an RL policy and against accidents (fork bombs,
rm -rf, runaway memory, stray daemons, files left behind); not a hardened sandbox against a determined
adversary.
1. A program that deliberately introspects the harness (gc, sys._getframe, ctypes) can read the nonce
   and forge passes; so can a settrace hook that jumps over an assert and then removes itself (only a
   hook left installed fails the test). An object with a rigged __eq__ passes `assert f(x) == y`, as in
   the official harness. Inspect the top-reward samples of a run.
2. It can read the world-readable files outside the hidden directories (with read_any: every file, and
   hidden ones by handle), with no network to send them anywhere; it writes only to its own tmpfs. Where
   `isolation['mount']` is False: reads every file, writes /tmp, /var/tmp, /dev/shm of the host.
3. As root, concurrent sandboxes share SANDBOX_UID: one fork bomb uses up RLIMIT_NPROC for all of them
   while it lives. Not root: no uid switch, no RLIMIT_NPROC, the program runs as the caller's uid.
4. Without a PID namespace (see `isolation`), a daemon that calls setsid() outlives the run, and a
   program running as the caller's uid can signal the caller and the fork servers.
5. `timeout_s` bounds the whole run, not each assert as in the official code: tests finished before a
   timeout keep their verdicts.
"""
import array
import atexit
import contextlib
import marshal
import os
import secrets
import select
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# sandbox (read at call time, so tests and scripts may change them)
PYTHON = sys.executable       # interpreter for the sandbox (run with -I -S -B)
SERVER = True                 # fork each program from a fork server (False: start a fresh interpreter per program)
PRIVATE_FS = True             # private read-only filesystem view where a mount namespace is allowed (False: the host's)
HIDDEN = None                 # directories programs see empty (None: the caller's home and this project's directory)
SANDBOX_UID = 65534           # 'nobody': the uid the sandbox drops to when we are root
MEMORY_MB = 4096              # RLIMIT_AS per process
FILE_MB = 10                  # RLIMIT_FSIZE: largest file (stdout/stderr included) it may write
MAX_PROCS = 64                # RLIMIT_NPROC for SANDBOX_UID (processes + threads, all sandboxes together)
MAX_FDS = 256                 # RLIMIT_NOFILE
DISK_MB = 256                 # tmpfs behind the program's directory, /tmp, /var/tmp and /dev/shm, all together
OUTPUT_BYTES = 64 * 1024      # stdout head + stderr tail kept in ExecResult.detail
GRACE_S = 5.0                 # parent's backstop beyond timeout_s, should the harness itself hang
SERVER_START_S = 60.0         # a fork server that is not ready by then is an error

isolation = {}  # filled by each run, see the module docstring
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # + HOME and TMPDIR: the program's directory
_RECORD_BYTES = 4 * 1024 * 1024  # the most of the result pipe we read

# harness.py's source, run as `python -I -S -B -c` with "main()" (one program) or "serve()" (a fork server)
_HARNESS = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness.py"), encoding="utf-8").read()


@dataclass
class ExecResult:
    passed: int
    total: int
    status: str                 # 'pass' | 'fail' | 'timeout' | 'error' (program did not load)
    detail: str
    results: list[bool] = field(default_factory=list)  # per test, in order

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


class _ServerDied(Exception):
    """The fork server exited (or was killed) before it answered: the run is repeated on a fresh one."""


class _Server:
    """A pre-started harness interpreter (a zygote) that forks one fresh harness per program, see serve()."""

    def __init__(self, python):
        self.python, self.log = python, tempfile.TemporaryFile()
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen([python, "-I", "-S", "-B", "-c", _HARNESS + "\nserve()\n"], stdin=theirs,
                                         stdout=subprocess.DEVNULL, stderr=self.log, cwd="/", env=_ENV,
                                         start_new_session=True)
        except OSError as e:
            ours.close()
            self.log.close()
            raise RuntimeError(f"execution harness did not start (is PYTHON={python} runnable?): {e}") from None
        finally:
            theirs.close()
        self.sock = ours
        ours.settimeout(SERVER_START_S)
        try:
            ready = ours.recv(1)
        except OSError:
            ready = b""
        ours.settimeout(None)
        if ready != b"R":
            log = self.tail()
            self.close(kill=True)
            raise RuntimeError(f"execution harness did not start (is PYTHON={python} runnable?): {log}")

    def tail(self):
        self.log.seek(0)
        return self.log.read()[-2000:].decode("utf-8", "replace")

    def send(self, fds, limit_s):
        """Hand a run's fds (payload, stdout, stderr, result pipe) to the server, which kills the harness's
        group past limit_s + GRACE_S."""
        try:
            self.sock.sendmsg([b"%.3f" % (limit_s + GRACE_S)],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        except OSError as e:
            raise _ServerDied(f"{e}; {self.tail()}") from None

    def collect(self, rfd, limit_s):
        """Read the records until the server answers. Returns (records, hung); hung is None if it never did."""
        data, hung = _read_records(rfd, limit_s + 2 * GRACE_S, done_fd=self.sock.fileno())
        if hung:
            return data, None
        reply = b""
        with contextlib.suppress(OSError):
            while not reply.endswith(b"\n") and (chunk := self.sock.recv(64)):
                reply += chunk
        if not reply.endswith(b"\n"):
            raise _ServerDied(f"it exited with {self.proc.poll()}; {self.tail()}")
        return data, reply.split()[1] != b"0"

    def close(self, kill=False):
        """Closing the socket makes an idle server exit; kill=True (or no exit within a second) kills it."""
        self.sock.close()
        try:
            if kill:
                self.proc.kill()
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_servers_lock = threading.Lock()
_idle_servers = []      # ready for a run; one per worker thread that has needed one
_live_servers = set()   # every server this process started and has not closed


def _take_server():
    """An idle fork server for PYTHON, or a new one; dead ones and those of another PYTHON are closed."""
    server, stale = None, []
    with _servers_lock:
        while _idle_servers and server is None:
            server = _idle_servers.pop()
            if server.python != PYTHON or server.proc.poll() is not None:
                _live_servers.discard(server)
                stale.append(server)
                server = None
    for old in stale:
        old.close(kill=True)
    if server is not None:
        return server
    server = _Server(PYTHON)
    with _servers_lock:
        _live_servers.add(server)
    return server


def _return_server(server):
    with _servers_lock:
        _idle_servers.append(server)


def _drop_server(server, kill=False):
    with _servers_lock:
        _live_servers.discard(server)
    if server.sock.fileno() >= 0:
        server.close(kill)


def close_servers():
    """Stop every fork server of this process (registered with atexit; the next run starts fresh ones)."""
    with _servers_lock:
        servers = list(_live_servers)
        _live_servers.clear()
        _idle_servers.clear()
    for server in servers:
        if server.sock.fileno() >= 0:
            server.close()


def _forget_servers():
    """In a forked child of the caller: the servers belong to the parent; drop our copies of their sockets."""
    global _servers_lock
    _servers_lock = threading.Lock()
    for server in _live_servers:
        server.sock.close()
    _live_servers.clear()
    _idle_servers.clear()


atexit.register(close_servers)
os.register_at_fork(after_in_child=_forget_servers)


def _read_records(rfd, limit_s, done_fd=None, proc=None):
    """Read the result pipe until the harness has ended (done_fd readable: the fork server answered; or proc
    exited, or the pipe closed) and the pipe is drained, or until limit_s. Returns (bytes, hit_limit)."""
    buf, end = bytearray(), time.monotonic() + limit_s
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    if done_fd is not None:
        poller.register(done_fd, select.POLLIN)
    reading = True
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return bytes(buf), True
        events = dict(poller.poll(1000 * (left if done_fd is not None else min(left, 0.05))))
        if reading and rfd in events:
            chunk = os.read(rfd, 65536)
            buf += chunk[: max(0, _RECORD_BYTES - len(buf))]   # the program may spam the pipe: keep a prefix
            if chunk:
                continue
            reading = False
            poller.unregister(rfd)
            if done_fd is None:
                return bytes(buf), False
        if done_fd in events or (proc is not None and not events and
                                 os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None):
            while reading and rfd in dict(poller.poll(0)) and (chunk := os.read(rfd, 65536)):
                buf += chunk[: max(0, _RECORD_BYTES - len(buf))]
            return bytes(buf), False


def _output(f, tail):
    size = os.fstat(f.fileno()).st_size
    f.seek(max(0, size - OUTPUT_BYTES // 2) if tail else 0)
    return f.read(OUTPUT_BYTES // 2).decode("utf-8", "replace")


def _rmtree(path):
    if os.geteuid() != 0:                       # the program may have chmod-ed its dirs to 000
        os.chmod(path, 0o700)
        for top, dirs, _ in os.walk(path):
            for d in dirs:
                if not os.path.islink(os.path.join(top, d)):
                    os.chmod(os.path.join(top, d), 0o700)
    shutil.rmtree(path)


def package_dirs(packages):
    """The directories `packages` names: [] for False/None, this interpreter's site-packages for True, else the
    given directory or directories (each must exist)."""
    if not packages:
        return []
    if packages is True:
        return [os.path.realpath(p) for p in site.getsitepackages() if os.path.isdir(p)]
    dirs = [packages] if isinstance(packages, str) else list(packages)
    for d in dirs:
        if not os.path.isdir(d):
            raise ValueError(f"package directory {d} does not exist: pass a site-packages directory, or True for "
                             f"those of the running interpreter ({sys.prefix})")
    return [os.path.realpath(d) for d in dirs]


def hidden_dirs():
    """HIDDEN, or by default the caller's home and this project's directory (with out/ and data/ wherever
    they point): the outermost existing directories, as real paths."""
    project = os.path.dirname(os.path.abspath(__file__))
    paths = HIDDEN if HIDDEN is not None else [os.path.expanduser("~"), project, os.path.join(project, "out"),
                                               os.path.join(project, "data")]
    real = {os.path.realpath(p) for p in paths if os.path.isdir(p)} - {"/"}
    return sorted(p for p in real if not any(p.startswith(q.rstrip("/") + "/") for q in real))


def run_tests(program: str, tests: list, timeout_s: float = 5.0, packages=False,
              server: bool | None = None) -> ExecResult:
    """Run `program` then each assert in `tests` in one contained process; see the module docstring.
    packages: let the program import site-packages (True: this interpreter's; or directories), read-only
    (default: the standard library only).
    server: fork the process from a fork server (None: SERVER), else start a fresh interpreter."""
    if not tests:
        raise ValueError("run_tests needs at least one test: a task without tests is a data bug")
    server = SERVER if server is None else server
    job = (str(program), [str(t) for t in tests], float(timeout_s), package_dirs(packages))
    try:
        return _run(*job, server)
    except _ServerDied:
        try:                                     # once more, on a fresh server
            return _run(*job, server)
        except _ServerDied as e:
            raise RuntimeError(f"the execution fork server died twice while running a program ({e}); set "
                               f"execution.SERVER = False to start one interpreter per program instead") from None


def _run(program, tests, timeout_s, packages, server):
    root = os.geteuid() == 0
    uid = SANDBOX_UID if root else os.getuid()
    limits = [("RLIMIT_CPU", int(timeout_s) + 2), ("RLIMIT_AS", MEMORY_MB << 20),
              ("RLIMIT_FSIZE", FILE_MB << 20), ("RLIMIT_NOFILE", MAX_FDS), ("RLIMIT_CORE", 0)]
    limits += [("RLIMIT_NPROC", MAX_PROCS)] if root else []
    view = (hidden_dirs(), DISK_MB) if PRIVATE_FS else None
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="exec_")
    env = {**_ENV, "HOME": workdir, "TMPDIR": workdir}
    rfd = -1
    try:
        if root:
            os.chown(workdir, uid, uid)
        with (tempfile.TemporaryFile() as payload, tempfile.TemporaryFile() as out,
              tempfile.TemporaryFile() as err):
            rfd, wfd = os.pipe()                 # the harness gets wfd as fd 3 from the server
            payload.write(marshal.dumps((nonce, 3 if server else wfd, program, tests, timeout_s, uid, limits,
                                         workdir, env, packages, view)))
            payload.seek(0)
            data, hung = (_serve if server else _spawn)(payload, out, err, wfd, rfd, workdir, env, timeout_s)
            stdout, stderr = _output(out, tail=False), _output(err, tail=True)
    finally:
        if rfd >= 0:
            os.close(rfd)
        _rmtree(workdir)
    return _verdict(data, nonce, tests, hung, stdout, stderr, timeout_s)


def _serve(payload, out, err, wfd, rfd, workdir, env, timeout_s):
    """Fork this program's harness from a fork server (one per concurrent caller). Returns (records, hung)."""
    try:
        server = _take_server()
        try:
            server.send([payload.fileno(), out.fileno(), err.fileno(), wfd], timeout_s)
        except _ServerDied:
            _drop_server(server, kill=True)
            raise
    finally:
        os.close(wfd)
    try:
        data, hung = server.collect(rfd, timeout_s)
    except _ServerDied:
        _drop_server(server, kill=True)
        raise
    if hung is None:                             # it did not answer in time: replace it
        _drop_server(server, kill=True)
        return data, True
    _return_server(server)
    return data, hung


def _spawn(payload, out, err, wfd, rfd, workdir, env, timeout_s):
    """One fresh harness interpreter for this program. Returns (records, hung)."""
    try:
        proc = subprocess.Popen([PYTHON, "-I", "-S", "-B", "-c", _HARNESS + "\nmain()\n"], stdin=payload,
                                stdout=out, stderr=err, cwd=workdir, env=env, pass_fds=(wfd,), start_new_session=True)
    except OSError as e:
        raise RuntimeError(f"execution harness did not start (is PYTHON={PYTHON} runnable?): {e}") from None
    finally:
        os.close(wfd)
    try:
        return _read_records(rfd, timeout_s + GRACE_S, proc=proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)    # backstop: whatever is left in its group
        proc.wait()


def _verdict(data, nonce, tests, hung, stdout, stderr, timeout_s):
    total = len(tests)
    seen, records = {}, {}
    for line in data.split(b"\n"):
        parts = line.split(b" ", 4)
        if len(parts) != 5 or parts[0] != nonce.encode():
            continue                             # not from the harness (or truncated)
        try:
            kind, a, b = parts[1].decode(), int(parts[2]), int(parts[3])
            msg = bytes.fromhex(parts[4].decode()).decode("utf-8", "replace")
        except ValueError:
            continue
        if kind == "T":
            seen.setdefault(a, []).append((b, msg))
        else:
            records[kind] = (a, b, msg)
    if "F" in records:
        raise RuntimeError(f"could not set up the sandbox's private filesystem view ({records['F'][2]}); set "
                           f"execution.PRIVATE_FS = False to run programs on the host's filesystem")
    if "I" not in records:
        raise RuntimeError(f"execution harness did not start (is PYTHON={PYTHON} runnable?): {stderr[-2000:]}")
    flags, _, hidden = records["I"]
    isolation.update(net=bool(flags & 1), pid=bool(flags & 2), ipc=bool(flags & 4), mount=bool(flags & 8),
                     hidden=tuple(sorted(hidden.split("\n"))) if hidden else (),
                     uid=SANDBOX_UID if os.geteuid() == 0 else os.getuid())
    if "S" in records:
        isolation.update(read_any=bool(records["S"][0]), proc=bool(records["S"][1]))
    timed_out = ("X" in records or hung) and "D" not in records
    if "S" not in records and not timed_out:
        raise RuntimeError(f"execution harness failed to set up the sandbox: {stderr[-2000:]}")
    results = [len(seen.get(i, [])) == 1 and seen[i][0][0] == 1 for i in range(total)]
    passed, loaded = sum(results), records.get("L", (0,))[0] == 1
    status = ("pass" if passed == total else "timeout" if timed_out else "fail" if loaded else "error")
    lines = [f"{status}: passed {passed}/{total}"]
    if timed_out:
        lines.append(f"timed out after {timeout_s:g} s")
    if not loaded and not timed_out:
        lines.append("program failed to load:\n" + records["L"][2] if "L" in records
                     else "program exited while loading")
    st = records.get("W", records.get("E", (None,)))[0]  # the program's process (below the init, or the init)
    if st is not None and loaded and "D" not in records:
        how = f"signal {os.WTERMSIG(st)}" if os.WIFSIGNALED(st) else f"exit code {os.waitstatus_to_exitcode(st)}"
        lines.append(f"sandbox ended ({how}) before all tests ran")
    for i in [i for i in range(total) if not results[i]][:3]:
        why = "; ".join(m for _, m in seen[i]) if i in seen else "not reached"
        lines.append(f"test {i} {tests[i][:200]!r}: {why or 'failed'}")
    if stdout:
        lines.append("--- stdout ---\n" + stdout)
    if stderr:
        lines.append("--- stderr ---\n" + stderr)
    return ExecResult(passed, total, status, "\n".join(lines), results)


def run_tests_batch(jobs, timeout_s: float = 5.0, workers: int | None = None, packages=False,
                    server: bool | None = None) -> list:
    """run_tests over [(program, tests), ...], in order, on a thread pool (each thread has its own fork server)."""
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], timeout_s, packages, server), jobs))
