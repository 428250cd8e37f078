"""Tests for execution.py's isolation: what a program in the sandbox cannot do to the caller or the host
(kill it, leave processes behind, read its environment, reach the network, write outside its private
directory, see other sandboxes' files or the hidden directories), and the private filesystem view.

Run: .venv/bin/python -m pytest tests/test_sandbox.py -q   (as root the network/PID/mount-namespace and
privilege-drop checks are hard requirements, see test_isolation_is_active)
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import execution  # noqa: E402
from execution import run_tests, run_tests_batch  # noqa: E402
from test_execution import GOOD, REPO, TESTS, check, marked_processes  # noqa: E402


def test_isolation_is_active():
    """Observed from inside the sandbox, not read back from execution.isolation (which the code fills itself):
    a planted bug that skips the setuid, the pid or the network namespace fails one of these asserts."""
    uid = 65534 if os.geteuid() == 0 else os.geteuid()  # root drops to 'nobody'
    probes = [f"import os\nassert os.getuid() == {uid}",
              f"import os\ntry:\n    os.kill({os.getpid()}, 0)\nexcept ProcessLookupError:\n    pass\n"
              "else:\n    raise AssertionError('the host pid is visible')",
              "import socket\nassert [name for _, name in socket.if_nameindex()] == ['lo']"]
    check(run_tests(GOOD, probes), "pass", [True] * 3)
    assert execution.isolation["net"] and execution.isolation["pid"] and execution.isolation["uid"] == uid


def test_killing_parent_or_own_group_leaves_caller_unharmed():
    for attack, status in [("os.kill(os.getppid(), 9)", "pass"), ("os.killpg(0, 9)", "error"),
                           ("os.killpg(os.getpgid(0), 9)", "error")]:
        r = run_tests(f"import os\ntry:\n    {attack}\nexcept OSError:\n    pass\n" + GOOD, TESTS)
        if os.geteuid() == 0:  # its parent is the root-owned init of its namespace; its group holds itself
            assert r.status == status, r.detail
        assert r.status in ("pass", "error"), r.detail
    check(run_tests(GOOD, TESTS), "pass", [True] * 3)


def test_kill_everything_stays_inside_the_sandbox():
    run_tests(GOOD, TESTS[:1])
    assert execution.isolation["pid"], "no PID namespace here: kill(-1) would reach our own processes, not run"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        run_tests("import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\n" + GOOD, TESTS)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_files_outside_the_temp_dir_are_untouched(tmp_path):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("precious")
    os.chmod(tmp_path, 0o755)
    os.chmod(sentinel, 0o644)
    program = f"""
import os, shutil
P = {str(sentinel)!r}
for attack in (lambda: os.remove(P), lambda: open(P, 'w').write('pwned'), lambda: os.chmod(P, 0o777),
               lambda: os.rename(P, P + '.x'), lambda: shutil.rmtree(os.path.dirname(P)),
               lambda: open(os.path.join(os.path.dirname(P), 'new.txt'), 'w').write('x')):
    try:
        attack()
    except OSError:
        pass
os.makedirs('locked/deeper')
open('locked/deeper/junk.txt', 'w').write('junk')
os.chmod('locked/deeper', 0)
os.chmod('locked', 0)
print('CWD=' + os.getcwd())
""" + GOOD
    r = run_tests(program, TESTS)
    check(r, "pass", [True] * 3)
    assert sentinel.read_text() == "precious" and oct(sentinel.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel.txt"]
    cwd = r.detail.split("CWD=")[1].split()[0]
    assert cwd != str(Path.cwd()) and not os.path.exists(cwd)  # its temp dir is gone


def test_background_processes_daemons_and_threads_die_with_the_run():
    marker = "31." + str(uuid.uuid4().int)[:8]
    name = "dm" + uuid.uuid4().hex[:8]
    program = f"""
import ctypes, os, subprocess, threading, time
subprocess.Popen(['sleep', '{marker}'])
subprocess.Popen(['sleep', '{marker}'], start_new_session=True)
if os.fork() == 0:                      # double-fork daemon that leaves the session
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0)
        time.sleep(30)
    os._exit(0)
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
threading.Thread(target=time.sleep, args=(30,)).start()
time.sleep(0.2)
""" + GOOD
    t0 = time.monotonic()
    r = run_tests(program, TESTS)
    check(r, "pass", [True] * 3)
    assert time.monotonic() - t0 < 3.0  # did not wait for the threads
    assert marked_processes(marker) == [] and marked_processes(name) == []


def test_parent_environment_is_not_visible(monkeypatch):
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("EXEC_TEST_SECRET", secret)
    holder = subprocess.Popen(["sleep", "30"], env={"EXEC_TEST_SECRET": secret})  # a root process holding it
    try:
        program = f"""
import os
def leaks():
    found = [k for k, v in os.environ.items() if {secret!r} in v or k == 'EXEC_TEST_SECRET']
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            if {secret!r}.encode() in open(f'/proc/{{pid}}/environ', 'rb').read():
                found.append(pid)
        except OSError:
            pass
    return found
"""
        r = run_tests(program, ["assert leaks() == []",
                                "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'TMPDIR']"])
        check(r, "pass", [True, True])
    finally:
        holder.kill()
        holder.wait()


def test_no_network_to_a_local_listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        program = f"""
import socket
def connects():
    try:
        socket.create_connection(('127.0.0.1', {port}), timeout=1).close()
        return True
    except OSError:
        return False
"""
        r = run_tests(program, ["assert connects() is False"])
        if execution.isolation["net"]:
            check(r, "pass", [True])
            with pytest.raises(BlockingIOError):
                server.accept()
        else:  # documented: without a network namespace the program can connect
            check(r, "fail", [False])
    finally:
        server.close()


# ---------------------------------------------------------------- filesystem

def test_writes_anywhere_but_its_own_directory_leave_the_host_untouched():
    tag = uuid.uuid4().hex[:12]
    places = ["/tmp", "/var/tmp", "/dev/shm", str(REPO), str(Path.home())]
    sentinels = {p: Path(p) / f"exec_sentinel_{tag}.txt" for p in places}
    try:
        for p, s in sentinels.items():  # world-writable: without the mount namespace the sandbox uid could write them
            s.write_bytes(b"precious " + p.encode())
            os.chmod(s, 0o666)
        program = f"""
import os, shutil
seen, made = [], []
for top in {places!r}:
    s = os.path.join(top, 'exec_sentinel_{tag}.txt')
    seen += [top] if os.path.exists(s) else []
    for attack in (lambda: open(s, 'w').write('pwned'), lambda: open(s, 'a').write('pwned'),
                   lambda: os.chmod(s, 0o600), lambda: os.rename(s, s + '.moved'), lambda: os.remove(s),
                   lambda: os.symlink('/etc/passwd', s), lambda: os.mkdir(os.path.join(top, 'dir_{tag}'))):
        try:
            attack()
        except OSError:
            pass
    try:
        open(os.path.join(top, 'new_{tag}.txt'), 'w').write('x')
        made.append(top)
    except OSError:
        pass
open('mine_{tag}.txt', 'w').write('in its own directory')
print('CWD=' + os.getcwd())
""" + GOOD
        r = run_tests(program, ["assert seen == []", "assert made == ['/tmp', '/var/tmp', '/dev/shm']",
                                f"assert open('mine_{tag}.txt').read() == 'in its own directory'"] + TESTS)
        assert execution.isolation["mount"], "no mount namespace here: the program could write /tmp and /dev/shm"
        check(r, "pass", [True] * 6)
        for p, s in sentinels.items():
            assert s.read_bytes() == b"precious " + p.encode() and s.stat().st_mode & 0o777 == 0o666
            assert sorted(Path(p).glob(f"*{tag}*")) == [s], p
        cwd = r.detail.split("CWD=")[1].split()[0]
        assert not os.path.exists(cwd)  # its own directory lived on the sandbox's tmpfs only
    finally:
        for p in places:
            for leftover in Path(p).glob(f"*{tag}*"):
                shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()


def test_concurrent_sandboxes_cannot_see_each_others_files():
    tag = uuid.uuid4().hex[:12]
    writer = f"""
import os, time
for top in ('/tmp', '/var/tmp', '/dev/shm', '.'):
    open(os.path.join(top, 'shared_{tag}'), 'w').write('from the writer')
def still_there():
    time.sleep(1.0)  # the reader looks meanwhile
    return all(os.path.exists(os.path.join(top, 'shared_{tag}')) for top in ('/tmp', '/var/tmp', '/dev/shm', '.'))
"""
    reader = f"""
import glob, os, time
time.sleep(0.4)
def found():
    hits = [p for top in ('/tmp', '/var/tmp', '/dev/shm') for p in glob.glob(top + '/**/shared_{tag}', recursive=True)]
    return hits + [d for d in os.listdir('/tmp') if d != os.path.basename(os.getcwd())]
"""
    try:
        a, b = run_tests_batch([(writer, ["assert still_there()"]), (reader, ["assert found() == []"])], workers=2)
    finally:  # (on the host only if the sandbox failed)
        for leftover in [Path(top) / f"shared_{tag}" for top in ("/tmp", "/var/tmp", "/dev/shm")]:
            leftover.unlink(missing_ok=True)
    check(a, "pass", [True])
    check(b, "pass", [True])


def test_hidden_directories_look_empty_and_the_interpreter_still_works():
    program = """
import os, subprocess, sys, decimal, sqlite3  # lib-dynload modules load from the directories bound back
def listing(path):
    return sorted(os.listdir(path))
def child():
    return subprocess.run([sys.executable, '-c', 'import json; print(json.dumps(7))'], capture_output=True,
                          text=True, timeout=10).stdout.strip()
"""
    # the project is hidden except the directory that holds the interpreter when it lives inside it (run.sh's .venv)
    inside = [p for p in (sys.prefix, os.path.dirname(sys.executable)) if p.startswith(str(REPO) + os.sep)]
    bound = sorted({Path(p).relative_to(REPO).parts[0] for p in inside})
    r = run_tests(program, [f"assert listing({str(REPO)!r}) == {bound!r}", "assert child() == '7'",
                            "assert os.listdir('/var/tmp') == os.listdir('/dev/shm') == []",
                            "assert sorted(os.listdir('/proc/'))[:2] == ['1', '2']"])  # its own processes only
    check(r, "pass", [True] * 4)
    home = str(Path.home())
    assert home in execution.isolation["hidden"] and str(REPO) in execution.isolation["hidden"]


def test_private_filesystem_can_be_turned_off_and_a_broken_view_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "visible.txt").write_text("host")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "visible.txt", 0o644)
    monkeypatch.setattr(execution, "PRIVATE_FS", False)
    r = run_tests(GOOD, [f"assert open({str(tmp_path / 'visible.txt')!r}).read() == 'host'"])
    check(r, "pass", [True])
    assert execution.isolation["mount"] is False and execution.isolation["hidden"] == ()
    monkeypatch.setattr(execution, "PRIVATE_FS", True)
    monkeypatch.setattr(execution, "DISK_MB", -1)  # tmpfs refuses size=-1m
    with pytest.raises(RuntimeError, match="PRIVATE_FS = False"):
        run_tests(GOOD, TESTS)


# ---------------------------------------------------------------- fork server
