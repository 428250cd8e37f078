"""The one place where untrusted generated code runs: a contained subprocess per program, and the rewards.

Design. `run_tests(program, tests)` starts ONE fresh interpreter per program (the official code starts
one `python3 -c program+assert` per assert, ~3-5x slower, see bench_execution.py). A harness in it
execs the program in a fresh `__main__`, then each test (one assert statement, compiled before the
program runs) on its own, catching everything including SystemExit, so a failing test hides no other.
A test passes only if the harness saw its exec return. Results travel over a private pipe as lines
carrying a per-run random nonce (sent on stdin, never on the command line), never over stdout, and only
from the harness's own pid, so prints, blind writes to every fd and forked children report nothing.
After the program ran, the harness calls only privately bound functions and formats records without
any builtin lookup, so patching `builtins` (AssertionError, exec, str, __import__ ...) cannot turn a
failure into a pass. Exiting early (os._exit, sys.exit, exit(), a signal) fails the unseen tests; at
the top level, even after the definitions, it is a program that did not load: 'error'.

Containment, enforced by the OS. The harness runs in a new session and, where permitted (root, or
unprivileged user namespaces), unshares a network namespace (no interfaces, not even loopback) and a
PID namespace whose init forks the program's process: when the init exits or is killed, the kernel
kills everything the program started (background jobs, setsid daemons). The outer harness enforces
the wall-clock timeout with SIGKILL; the parent then kills the process group as a backstop. rlimits:
CPU, address space, file size (stdout/stderr included), open files, no core; as root also processes,
after dropping to uid/gid 65534 (no groups, no_new_privs): no writes outside the fresh temp dir
(cwd = HOME = TMPDIR, removed afterwards), no signals to our processes. It keeps CAP_DAC_READ_SEARCH,
read-only access to every file, because the interpreter may live where uid 65534 cannot read it (here
pyenv under /root, mode 0700). Environment: PATH, LANG, HOME, TMPDIR only; stdin /dev/null; stdout and
stderr go to unlinked files of which the head/tail land in `detail`. `isolation` records what is active.

Threat model: guard rails against reward hacking by an RL policy and against accidents (fork bombs,
rm -rf, runaway memory, stray daemons); not a hardened sandbox against a determined adversary.
1. A program that deliberately introspects the harness (gc, sys._getframe, ctypes) can read the nonce
   and forge passes; so can a settrace hook that jumps over an assert and then removes itself (only a
   hook left installed fails the test). An object with a rigged __eq__ passes `assert f(x) == y`, as in
   the official harness. Inspect the top-reward samples of a run.
2. It can read any file (no writes), with no network to send it anywhere; /tmp, /dev/shm stay writable.
3. As root, concurrent sandboxes share uid 65534: one fork bomb uses up RLIMIT_NPROC for all of them
   while it lives, and they can read each other's temp dirs. Not root: no uid switch, no RLIMIT_NPROC.
4. Without a PID namespace (see `isolation`), a daemon that calls setsid() outlives the run.
5. `python -I -S -B`: stdlib only, no site-packages (no numpy). `timeout_s` bounds the whole run, not
   each assert as in the official code: tests finished before a timeout keep their verdicts.
"""
import ast
import contextlib
import marshal
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# limits (read at call time, so tests and scripts may change them)
PYTHON = sys.executable       # interpreter for the sandbox (run with -I -S -B)
SANDBOX_UID = 65534           # 'nobody': the uid the sandbox drops to when we are root
MEMORY_MB = 4096              # RLIMIT_AS per process
FILE_MB = 10                  # RLIMIT_FSIZE: largest file (stdout/stderr included) it may write
MAX_PROCS = 64                # RLIMIT_NPROC for SANDBOX_UID (processes + threads, all sandboxes together)
MAX_FDS = 256                 # RLIMIT_NOFILE
OUTPUT_BYTES = 64 * 1024      # stdout head + stderr tail kept in ExecResult.detail
GRACE_S = 5.0                 # parent's backstop beyond timeout_s, should the harness itself hang
# rewards (weights are applied by the caller: reward = CODE_WEIGHT * code + FORMAT_WEIGHT * format)
CODE_WEIGHT = 2.0
FORMAT_WEIGHT = 0.5

isolation = {}  # filled by each run: {'net': bool, 'pid': bool, 'uid': int}

# The harness (`python -I -S -B -c`): main() unshares, forks, times out; sandbox() confines and runs.
_HARNESS = r'''
import ctypes, linecache, marshal, os, resource, signal, site, sys, traceback, types

def reporter(fd, nonce, owner):
    def send(kind, a=0, b=0, msg="", _write=os.write, _getpid=os.getpid):  # no global lookups
        if _getpid() == owner:
            _write(fd, ("%s %s %d %d %s\n" % (nonce, kind, a, b, msg)).encode())
    return send

def describe(e, full=False, _BaseException=BaseException):
    try:
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # skip the harness's own frame
        lines = traceback.format_exception(type(e), e, tb) if full else traceback.format_exception_only(e)
        text = "".join(lines).strip().encode("utf-8", "replace")[-1500:]  # a record stays < PIPE_BUF
    except _BaseException:
        text = b"unprintable exception"
    return text.hex()

def sandbox(libc, fd, nonce, program, tests, uid, limits, exec=exec, compile=compile, len=len,
            range=range, BaseException=BaseException, gettrace=sys.gettrace, settrace=sys.settrace,
            getprofile=sys.getprofile, setprofile=sys.setprofile, _exit=os._exit, out=sys.stdout):
    libc.prctl(1, 9, 0, 0, 0)                            # PR_SET_PDEATHSIG: SIGKILL if the harness dies
    if os.getpid() == 1:         # init of the new PID namespace: it ignores default-action signals sent
        worker = os.fork()       # from inside (kill(getpid())), so the program runs in a child; forked
        if worker:               # while still root, so RLIMIT_NPROC exhausted by others cannot stop it
            reporter(fd, nonce, 1)("W", os.waitpid(worker, 0)[1])
            _exit(0)
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.geteuid() == 0 and uid != 0:
        libc.prctl(8, 1, 0, 0, 0)                        # PR_SET_KEEPCAPS across setuid
        os.setgroups([]); os.setgid(uid); os.setuid(uid)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)    # _LINUX_CAPABILITY_VERSION_3, this process
        caps = (ctypes.c_uint32 * 6)(4, 4, 4, 0, 0, 0)   # CAP_DAC_READ_SEARCH (bit 2): eff, perm, inh
        if libc.capset(header, caps) or libc.prctl(47, 2, 2, 0, 0):  # + PR_CAP_AMBIENT_RAISE
            raise OSError(ctypes.get_errno(), "capset")
    if libc.prctl(38, 1, 0, 0, 0):                       # PR_SET_NO_NEW_PRIVS: no setuid binaries
        raise OSError(ctypes.get_errno(), "prctl")
    send = reporter(fd, nonce, os.getpid())
    site.setquit()                                       # exit() and quit(), as `python3 -c` has
    codes = []
    for i in range(len(tests)):                          # compiled before any user code runs
        linecache.cache[f"<test {i}>"] = (len(tests[i]), None, tests[i].splitlines(True), f"<test {i}>")
        try:
            codes.append((compile(tests[i], f"<test {i}>", "exec"), ""))
        except BaseException as e:
            codes.append((None, describe(e)))
    linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    send("S")
    try:
        exec(compile(program, "<program>", "exec"), main.__dict__)
    except BaseException as e:
        send("L", 0, 0, describe(e, full=True))
        _exit(0)
    send("L", 1)
    for i in range(len(codes)):
        code, msg = codes[i]
        ok = False
        if code is not None:
            try:
                settrace(None); setprofile(None)
                exec(code, main.__dict__)
                ok = gettrace() is None and getprofile() is None
                msg = "" if ok else b"a trace/profile hook was left installed".hex()
            except BaseException as e:
                msg = describe(e)
        send("T", i, ok, msg)
    send("D")
    try:
        out.flush()
    except BaseException:
        pass
    _exit(0)

def main():
    nonce, fd, program, tests, timeout, uid, limits, workdir = marshal.loads(sys.stdin.buffer.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    libc = ctypes.CDLL(None, use_errno=True)
    root = os.geteuid() == 0
    userns = 0 if root else 0x10000000                       # CLONE_NEWUSER, when not root
    net = libc.unshare(userns | 0x40000000) == 0             # CLONE_NEWNET
    pid = libc.unshare(0x20000000 | (0 if root or net else userns)) == 0  # CLONE_NEWPID
    send = reporter(fd, nonce, os.getpid())
    send("I", net, pid)
    child = os.fork()
    if child == 0:
        try:
            os.chdir(workdir)
            sandbox(libc, fd, nonce, program, tests, uid, limits)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)
    def on_timeout(signum, frame):
        send("X")
        os.kill(child, signal.SIGKILL)
    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)      # not reaped yet: kill stays safe
    signal.setitimer(signal.ITIMER_REAL, 0)
    send("E", os.waitpid(child, 0)[1])
    os._exit(0)

main()
'''


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


def _read_records(rfd, proc, limit_s):
    """Read the result pipe until EOF, the harness's exit, or limit_s. Returns (bytes, hit_limit)."""
    buf, end = bytearray(), time.monotonic() + limit_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return bytes(buf), True
        if select.select([rfd], [], [], min(left, 0.05))[0]:
            chunk = os.read(rfd, 65536)
            if not chunk:
                return bytes(buf), False
            if len(buf) < 4 * 1024 * 1024:       # the program may spam the pipe; we keep a prefix
                buf += chunk
        elif os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            while select.select([rfd], [], [], 0)[0] and (chunk := os.read(rfd, 65536)):
                buf += chunk[: max(0, 4 * 1024 * 1024 - len(buf))]
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


def run_tests(program: str, tests: list, timeout_s: float = 5.0) -> ExecResult:
    """Run `program` then each assert in `tests` in one contained subprocess; see the module docstring."""
    if not tests:
        raise ValueError("run_tests needs at least one test: a task without tests is a data bug")
    root = os.geteuid() == 0
    uid = SANDBOX_UID if root else os.getuid()
    limits = [("RLIMIT_CPU", int(timeout_s) + 2), ("RLIMIT_AS", MEMORY_MB << 20),
              ("RLIMIT_FSIZE", FILE_MB << 20), ("RLIMIT_NOFILE", MAX_FDS), ("RLIMIT_CORE", 0)]
    limits += [("RLIMIT_NPROC", MAX_PROCS)] if root else []
    nonce = secrets.token_hex(16)
    workdir = tempfile.mkdtemp(prefix="exec_")
    rfd, wfd = os.pipe()
    try:
        if root:
            os.chown(workdir, uid, uid)
        payload = marshal.dumps((nonce, wfd, str(program), [str(t) for t in tests], float(timeout_s),
                                 uid, limits, workdir))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([PYTHON, "-I", "-S", "-B", "-c", _HARNESS], stdin=subprocess.PIPE,
                                    stdout=out, stderr=err, cwd=workdir, env=env, pass_fds=(wfd,),
                                    start_new_session=True)
            os.close(wfd)
            wfd = -1
            with contextlib.suppress(BrokenPipeError):  # a harness that died early: no 'I' record below
                proc.stdin.write(payload)
                proc.stdin.close()
            data, hung = _read_records(rfd, proc, timeout_s + GRACE_S)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)    # backstop: whatever is left in its group
            proc.wait()
            stdout, stderr = _output(out, tail=False), _output(err, tail=True)
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
        _rmtree(workdir)
    return _verdict(data, nonce, tests, hung, stdout, stderr, timeout_s)


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
    if "I" not in records:
        raise RuntimeError(f"execution harness did not start (is PYTHON={PYTHON} runnable?): {stderr[-2000:]}")
    uid = SANDBOX_UID if os.geteuid() == 0 else os.getuid()
    isolation.update(net=bool(records["I"][0]), pid=bool(records["I"][1]), uid=uid)
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
        lines.append("program failed to load:\n" + records["L"][2] if "L" in records else "program exited while loading")
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


def run_tests_batch(jobs, timeout_s: float = 5.0, workers: int | None = None) -> list:
    """run_tests over [(program, tests), ...] with a thread pool (each job is its own subprocess), in order."""
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], timeout_s), jobs))


# Rewards (DESIGN.md section 9). The format pattern is the official one (DiffuCoder's
# get_code_format_reward): optional prose without ``` before the block, exactly one ```python block
# whose code holds no ```, and the closing fence last. Deliberate difference: the official pattern
# demands exactly one "\n" after the closing fence; we accept zero or one, since whether that newline
# survives depends on where decoding stopped. ```py, ```python3 or "```python " do not count.
_FORMAT = re.compile(r"(?:(?!```)[\s\S])*?```python\n((?:(?!```)[\s\S])*?)```\n?")
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def format_reward(completion: str) -> float:
    """1.0: one well-placed ```python block whose code parses; 0.5: the format holds but it does not parse; 0."""
    match = _FORMAT.fullmatch(completion)
    if match is None:
        return 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(match.group(1).strip())   # .strip() as the official code
        return 1.0
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0.5


def extract_code(completion: str):
    """The code of the first ```python block (as the official extract_code), or None if there is none."""
    match = _BLOCK.search(completion)
    return match.group(1) if match else None


def code_reward(completion: str, tests: list, timeout_s: float = 5.0) -> float:
    """Fraction of `tests` that pass, computed only when format_reward(completion) == 1.0, else 0."""
    if format_reward(completion) != 1.0:
        return 0.0
    return run_tests(extract_code(completion), tests, timeout_s).pass_rate
