"""The sandbox harness: the code that runs inside the contained process (execution.py's docstring has the
design and the threat model). It is never imported: execution.py reads this file and runs it with
`python -I -S -B -c`, then `main()` (one program) or `serve()` (the fork server, which forks a fresh main()
per request).

Containment, enforced by the OS. The harness runs in a new session and, where permitted (root, or
unprivileged user namespaces), unshares a network namespace (not even loopback), an IPC namespace, a
mount namespace and a PID namespace whose init forks the program's process: when the init exits or is
killed, the kernel kills everything the program started (background jobs, setsid daemons). The outer
harness enforces the wall-clock timeout with SIGKILL; its parent (the fork server, or execution.py) then
kills the process group as a backstop. The rlimits are execution.py's constants; as root the program
also drops to uid/gid SANDBOX_UID (no groups, no_new_privs, no capabilities but the one named below),
so it cannot signal our processes. stdin is /dev/null; stdout and stderr go to unlinked files, whose
head/tail land in the result's `detail`.
Filesystem (execution.PRIVATE_FS = True): in the mount namespace every mount is read-only. The program's
directory (cwd = HOME = TMPDIR), /tmp, /var/tmp and /dev/shm are private and empty, on one tmpfs of
DISK_MB that disappears with the run. The hidden directories (execution.hidden_dirs) are covered by an
empty read-only tmpfs, except the directories the interpreter and the allowed packages need, bound back
read-only (private_view). /proc is the sandbox's own. The program cannot undo this: it has no
capabilities, and in a user namespace of its own these mounts are locked. As root the sandbox keeps
CAP_DAC_READ_SEARCH (read any file) only if SANDBOX_UID cannot read the interpreter's directories in
that view. Without a mount namespace the filesystem is the host's: writes only in a fresh temp dir and
in /tmp, /var/tmp, /dev/shm.
"""
import ctypes, linecache, marshal, os, resource, signal, site, sys, traceback, types

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 1 << 27, 1 << 28, 1 << 29, 1 << 30
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
LOCKED = {b"nosuid": MS_NOSUID, b"nodev": MS_NODEV, b"noexec": MS_NOEXEC}  # a remount must repeat these in a user ns
NEEDED = ("/", "/dev", "/proc", "/usr", "/etc")  # never hidden, nor any directory above them

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

def mount(source, target, fstype, flags, data=None):
    encode = lambda s: None if s is None else os.fsencode(s)
    if libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)):
        err = ctypes.get_errno()
        raise OSError(err, "mount %s on %s: %s" % (source or fstype, target, os.strerror(err)))

def within(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")

def mkdirs(path):                                        # a mount point, readable by everyone
    if not os.path.exists(path):
        mkdirs(os.path.dirname(path))
        os.mkdir(path)
        os.chmod(path, 0o755)

def private_view(workdir, uid, gid, hidden, packages, size_mb):
    # In a new mount namespace, still privileged: one tmpfs holds the program's directory, /tmp, /var/tmp and
    # /dev/shm; `hidden` directories get an empty tmpfs, with the interpreter's and the packages' directories bound
    # back; every other mount becomes read-only. Returns the directories hidden.
    keep = {os.path.realpath(p) for p in [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
            os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))] + sys.path + packages
            if p and os.path.exists(p)}
    keep = [k for k in sorted(keep) if not any(within(k, other) for other in keep if other != k)]  # outermost only
    workdir = os.path.realpath(workdir)                  # as /proc/self/mountinfo will show it
    mount(None, "/", None, MS_REC | MS_PRIVATE)         # nothing propagates back to the host
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, "size=%dm,nr_inodes=65536,mode=0700" % size_mb)
    store = os.open(workdir, os.O_PATH)                  # reachable through /proc/self/fd once covered
    for name, mode in (("tmp", 0o1777), ("var_tmp", 0o1777), ("shm", 0o1777), ("work", 0o700)):
        os.mkdir("%s/%s" % (workdir, name))
        os.chmod("%s/%s" % (workdir, name), mode)
    os.chown(workdir + "/work", uid, gid)
    shown = []
    for top in sorted(hidden, key=len):
        if (not os.path.isdir(top) or any(within(n, top) for n in NEEDED) or any(within(top, h) for h in shown)
                or any(within(top, k) for k in keep)):
            continue
        inner = [(k, os.open(k, os.O_PATH)) for k in keep if within(k, top)]
        mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path, fd in inner:
            if os.path.isdir("/proc/self/fd/%d" % fd):
                mkdirs(path)
            else:                                        # a file on sys.path (python3X.zip)
                mkdirs(os.path.dirname(path))
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            mount("/proc/self/fd/%d" % fd, path, None, MS_BIND | MS_REC)
            os.close(fd)
        shown.append(top)
    writable = []
    for name, path in (("tmp", "/tmp"), ("var_tmp", "/var/tmp"), ("shm", "/dev/shm")):
        path = os.path.realpath(path)
        if os.path.isdir(path) and path not in writable:
            mount("/proc/self/fd/%d/%s" % (store, name), path, None, MS_BIND)
            writable.append(path)
    mkdirs(workdir)                                      # gone if it was under /tmp or a hidden directory
    mount("/proc/self/fd/%d/work" % store, workdir, None, MS_BIND)
    writable.append(workdir)
    os.close(store)
    with open("/proc/self/mountinfo", "rb") as f:
        points = [line.split()[4:6] for line in f]
    for point, options in points:                        # mountinfo escapes space, tab, newline, backslash
        point = os.fsdecode(point.replace(b"\\040", b" ").replace(b"\\011", b"\t").replace(b"\\012", b"\n")
                            .replace(b"\\134", b"\\"))
        if point in writable:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(LOCKED.get(o, 0) for o in options.split(b","))
        if libc.mount(None, os.fsencode(point), None, flags, None):
            err = ctypes.get_errno()
            if err not in (2, 22):                       # ENOENT, EINVAL: covered by a later mount
                raise OSError(err, "read-only remount of %s: %s" % (point, os.strerror(err)))
    return shown

def sandbox(fd, nonce, program, tests, uid, limits, mounted, packages, exec=exec, compile=compile, len=len,
            range=range, BaseException=BaseException, gettrace=sys.gettrace, settrace=sys.settrace,
            getprofile=sys.getprofile, setprofile=sys.setprofile, _exit=os._exit, out=sys.stdout):
    libc.prctl(1, 9, 0, 0, 0)                            # PR_SET_PDEATHSIG: SIGKILL if the harness dies
    proc = False
    if os.getpid() == 1:         # init of the new PID namespace: it ignores default-action signals sent
        if mounted:              # from inside (kill(getpid())), so the program runs in a child; forked
            proc = libc.mount(b"proc", b"/proc", b"proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0
        worker = os.fork()       # while still root, so RLIMIT_NPROC exhausted by others cannot stop it
        if worker:
            reporter(fd, nonce, 1)("W", os.waitpid(worker, 0)[1])
            _exit(0)
    for name, value in limits:
        resource.setrlimit(getattr(resource, name), (value, value))
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)        # _LINUX_CAPABILITY_VERSION_3, this process
    read_any = True
    if os.geteuid() == 0 and uid != 0:
        libc.prctl(8, 1, 0, 0, 0)                        # PR_SET_KEEPCAPS across setuid
        os.setgroups([]); os.setgid(uid); os.setuid(uid)
        # access() checks the real uid without capabilities: can uid read the interpreter and packages?
        read_any = not mounted or not all(os.access(p, os.R_OK | os.X_OK) for p in sys.path + packages
                                       if os.path.exists(p))
        keep = 4 if read_any else 0                      # CAP_DAC_READ_SEARCH (bit 2): eff, perm, inh
        if libc.capset(header, (ctypes.c_uint32 * 6)(keep, keep, keep, 0, 0, 0)) or (
                read_any and libc.prctl(47, 2, 2, 0, 0)):  # + PR_CAP_AMBIENT_RAISE
            raise OSError(ctypes.get_errno(), "capset")
    elif os.geteuid() != 0 and libc.capset(header, (ctypes.c_uint32 * 6)(0, 0, 0, 0, 0, 0)):  # none left in a user ns
        raise OSError(ctypes.get_errno(), "capset")
    if libc.prctl(38, 1, 0, 0, 0):                       # PR_SET_NO_NEW_PRIVS: no setuid binaries
        raise OSError(ctypes.get_errno(), "prctl")
    send = reporter(fd, nonce, os.getpid())
    for path in packages:
        site.addsitedir(path)                            # as a venv's site would (.pth files included)
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
    send("S", read_any, proc)
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
    payload = b""
    while chunk := os.read(0, 1 << 20):
        payload += chunk
    nonce, fd, program, tests, timeout, uid, limits, workdir, env, packages, view = marshal.loads(payload)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.environ.clear()
    os.environ.update(env)
    send = reporter(fd, nonce, os.getpid())
    real_uid, real_gid = os.getuid(), os.getgid()
    if os.geteuid() != 0 and libc.unshare(CLONE_NEWUSER) == 0:  # not root: namespaces need a user namespace
        for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (real_uid, real_uid)),
                           ("gid_map", "%d %d 1" % (real_gid, real_gid))):
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
    net, pid, ipc = (libc.unshare(flag) == 0 for flag in (CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWIPC))
    mnt, hidden = view is not None and libc.unshare(CLONE_NEWNS) == 0, []
    if mnt:
        try:
            hidden = private_view(workdir, uid, uid if os.geteuid() == 0 else real_gid, view[0], packages, view[1])
        except OSError as e:
            send("F", 0, 0, str(e).encode().hex())
            os._exit(1)
    send("I", net | pid << 1 | ipc << 2 | mnt << 3, 0, "\n".join(hidden).encode().hex())
    child = os.fork()
    if child == 0:
        try:
            os.chdir(workdir)
            sandbox(fd, nonce, program, tests, uid, limits, mnt, packages)
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

def serve():
    # The fork server: fd 0 is a unix socket to the parent. Each request is a time limit with four fds
    # (payload, stdout, stderr, result pipe); a forked child becomes main() with them as fds 0-3, in a new
    # session. The server waits for it (killing its group past the limit), then answers "status hung".
    import array, fcntl, socket  # the server's alone: an interpreter that runs one program skips them
    sock = socket.socket(fileno=os.dup(0))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    hung = []
    def backstop(signum, frame):
        hung.append(1)
        for kill, target in ((os.killpg, child), (os.kill, child)):
            try:
                kill(target, signal.SIGKILL)
            except OSError:
                pass
    signal.signal(signal.SIGALRM, backstop)
    me = os.getpid()
    compile("assert f(1) == 2", "<warm-up>", "exec")     # the compiler's first use costs ~1 ms: pay it once
    sock.sendall(b"R")
    while True:
        try:
            msg, ancillary, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(4 * 4))
        except ConnectionError:
            msg = b""
        if not msg:                                      # the parent closed the socket or exited
            os._exit(0)
        fds = array.array("i")
        for _, _, data in ancillary:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        child = os.fork()
        if child == 0:
            try:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                libc.prctl(1, 9, 0, 0, 0)                # PR_SET_PDEATHSIG: die with the server
                if os.getppid() != me:                   # it died before the line above
                    os._exit(1)
                os.setsid()
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]
                for target, fd in enumerate(high):
                    os.dup2(fd, target)
                os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                main()
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        del hung[:]
        signal.setitimer(signal.ITIMER_REAL, float(msg))
        os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            os.killpg(child, signal.SIGKILL)             # backstop: whatever is left in its group
        except OSError:
            pass
        sock.sendall(b"%d %d\n" % (os.waitpid(child, 0)[1], len(hung)))
