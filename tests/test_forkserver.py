"""The fork server behind Cli (tests/support/forkserver.py, zygote.py) keeps a call a real process.

Most cases use a private zygote that preloads only json (it starts in a fraction of a second)
and runs small scripts written here; the last ones go through Cli and the session's zygote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli import DEMO, SAMPLE_CSV, Cli, base_env, exec_only, forking_enabled
from tests.support.forkserver import ForkServer, Unavailable


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scripts")


@pytest.fixture(scope="module")
def server(scripts):
    zygote = ForkServer(base_env(), scripts, preload=("json",))
    yield zygote
    zygote.close()


def script(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie counts as gone: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_child_has_the_calls_argv_cwd_environment_and_streams(server, scripts, tmp_path):
    probe = script(scripts, "probe.py",
                   "import json, os, sys\n"
                   "print(json.dumps({'argv': sys.argv, 'cwd': os.getcwd(), 'env': dict(os.environ),\n"
                   "                  'pid': os.getpid(), 'ppid': os.getppid(), 'path0': sys.path[0],\n"
                   "                  'tty': sys.stdout.isatty(), 'name': __name__}))\n"
                   "print('to stderr', file=sys.stderr)\n"
                   "sys.exit(3)\n")
    env = {**base_env(), "ONLY_IN_THIS_CALL": "yes"}
    env.pop("PATH_THAT_NOBODY_SETS", None)
    done = server.run(probe, ["a b", "--x"], env=env, cwd=tmp_path, timeout=30)
    assert done.returncode == 3, done.stderr
    seen = json.loads(done.stdout)
    assert seen["argv"] == [str(probe), "a b", "--x"]
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"] == env  # wholesale: nothing of the zygote's own environment is left over
    assert seen["pid"] not in (os.getpid(), server.pid) and seen["ppid"] == server.pid
    assert seen["path0"] == os.path.realpath(scripts) and seen["name"] == "__main__"
    assert seen["tty"] is False
    assert done.stderr == "to stderr\n"


def test_the_child_takes_the_given_umask_else_the_callers(server, scripts, tmp_path):
    path = script(scripts, "umask.py", "import os\nprint(oct(os.umask(0)))\n")
    assert server.run(path, [], env=base_env(), cwd=tmp_path, umask=0o027).stdout == "0o27\n"
    mine = os.umask(0o022)
    os.umask(mine)
    assert server.run(path, [], env=base_env(), cwd=tmp_path).stdout == f"{oct(mine)}\n"


def test_exit_codes_match_the_interpreters(server, scripts, tmp_path):
    cases = {
        "sys.exit()": (0, ""),
        "sys.exit('a message')": (1, "a message\n"),
        "raise ValueError('boom')": (1, "ValueError: boom"),
        "sys.exit(300)": (300 & 0xFF, ""),
        "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)": (-signal.SIGSEGV, ""),
        "import os; os._exit(7)": (7, ""),
    }
    for index, (body, (code, stderr)) in enumerate(cases.items()):
        path = script(scripts, f"exit{index}.py", f"import sys\n{body}\n")
        forked = server.run(path, [], env=base_env(), cwd=tmp_path, timeout=30)
        fresh = subprocess.run([sys.executable, str(path)], env=base_env(), cwd=tmp_path,
                               capture_output=True, text=True, timeout=30)
        assert forked.returncode == fresh.returncode == code, (body, forked, fresh)
        assert stderr in forked.stderr, (body, forked.stderr)
        if "Traceback" not in fresh.stderr:
            assert forked.stderr == fresh.stderr, body


def test_threads_atexit_and_buffered_output_end_as_in_a_fresh_interpreter(server, scripts, tmp_path):
    path = script(scripts, "ending.py",
                  "import atexit, sys, threading, time\n"
                  "atexit.register(lambda: print('atexit ran'))\n"
                  "def late():\n    time.sleep(0.3)\n    print('thread finished')\n"
                  "threading.Thread(target=late).start()\n"
                  "sys.stdout.write('no newline, still buffered')\n")
    forked = server.run(path, [], env=base_env(), cwd=tmp_path, timeout=30)
    fresh = subprocess.run([sys.executable, str(path)], env=base_env(), cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
    assert forked.returncode == fresh.returncode == 0
    assert forked.stdout == fresh.stdout == "no newline, still bufferedthread finished\natexit ran\n"


def test_a_timeout_kills_the_child_and_raises_like_subprocess_run(server, scripts, tmp_path):
    pid_file = tmp_path / "pid"
    path = script(scripts, "sleeper.py",
                  f"import os, sys, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                  "print('started', flush=True)\ntime.sleep(300)\n")
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        server.run(path, [], env=base_env(), cwd=tmp_path, timeout=2)
    assert time.monotonic() - started < 15
    assert raised.value.output == b"started\n"
    pid = int(pid_file.read_text())
    assert wait_until(lambda: not alive(pid)), f"child {pid} outlived its timeout"


def test_an_interrupted_call_kills_its_child_first(server, scripts, tmp_path):
    # As pytest-timeout's SIGALRM or a Ctrl-C would: an exception raised in the waiting thread.
    pid_file = tmp_path / "pid"
    path = script(scripts, "patient.py", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                  "time.sleep(60)\n")

    class Interrupted(Exception):
        pass

    def interrupt(*_):
        raise Interrupted("interrupted by the test")

    previous = signal.signal(signal.SIGUSR1, interrupt)
    poke = threading.Thread(target=lambda: wait_until(lambda: pid_file.exists() and pid_file.read_text())
                            and os.kill(os.getpid(), signal.SIGUSR1))
    try:
        poke.start()
        with pytest.raises(Interrupted):
            server.run(path, [], env=base_env(), cwd=tmp_path, timeout=None)
    finally:
        poke.join()
        signal.signal(signal.SIGUSR1, previous)
    pid = int(pid_file.read_text())
    assert wait_until(lambda: not alive(pid)), f"child {pid} outlived the interrupted call"


def test_the_call_gets_the_callers_stdin(server, scripts, tmp_path):
    path = script(scripts, "stdin.py", "import sys\nprint(repr(sys.stdin.read()))\n")
    source = tmp_path / "input.txt"
    source.write_text("line one\nline two\n")
    saved = os.dup(0)
    try:
        with open(source) as given:
            os.dup2(given.fileno(), 0)
        done = server.run(path, [], env=base_env(), cwd=tmp_path, timeout=30)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert done.stdout == repr("line one\nline two\n") + "\n", done.stderr


def test_concurrent_calls_run_side_by_side(server, scripts, tmp_path):
    path = script(scripts, "meet.py",
                  "import os, sys, time\nfolder = sys.argv[1]\n"
                  "open(os.path.join(folder, sys.argv[2]), 'w').close()\n"
                  "deadline = time.time() + 20\n"
                  "while len(os.listdir(folder)) < 2 and time.time() < deadline:\n    time.sleep(0.02)\n"
                  "sys.exit(0 if len(os.listdir(folder)) == 2 else 9)\n")
    meet = tmp_path / "meet"
    meet.mkdir()
    results = {}

    def call(name):
        results[name] = server.run(path, [str(meet), name], env=base_env(), cwd=tmp_path, timeout=60)

    threads = [threading.Thread(target=call, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[n].returncode for n in ("a", "b")] == [0, 0], results


def test_start_up_variables_send_the_call_to_exec(server, tmp_path):
    env = base_env()
    assert server.serves(env)
    assert server.serves({**env, "HF_HOME": str(tmp_path), "KRONOS_REGISTRY_HOME": str(tmp_path),
                          "NO_PROXY": "127.0.0.1", "PYTHONBREAKPOINT": "ray.util.rpdb.set_trace"})
    for changed in ({"PYTHONPATH": str(tmp_path)}, {"OMP_NUM_THREADS": "2"}, {"LD_PRELOAD": "x.so"},
                    {"HOME": str(tmp_path)}, {"LANG": "C"}, {"TQDM_DISABLE": "1"}):
        assert not server.serves({**env, **changed}), changed
        with pytest.raises(Unavailable):
            server.run("unused.py", [], env={**env, **changed}, cwd=tmp_path)


def test_a_dead_zygote_is_started_again_and_the_session_end_takes_it_and_its_children(scripts, tmp_path):
    zygote = ForkServer(base_env(), scripts, preload=("json",))
    path = script(scripts, "hello.py", "print('hello')\n")
    assert zygote.run(path, [], env=base_env(), cwd=tmp_path, timeout=30).stdout == "hello\n"
    first = zygote.pid
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: not alive(first))
    assert zygote.run(path, [], env=base_env(), cwd=tmp_path, timeout=30).stdout == "hello\n"
    assert zygote.pid != first

    pid_file = tmp_path / "pid"
    sleeper = script(scripts, "long.py", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                     "time.sleep(300)\n")
    outcome = {}

    def call():
        try:
            outcome["result"] = zygote.run(sleeper, [], env=base_env(), cwd=tmp_path, timeout=120)
        except RuntimeError as error:  # the zygote is gone: the call cannot report an exit code
            outcome["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text())
    child, second = int(pid_file.read_text()), zygote.pid
    zygote.close()  # what the end of the test session does (its lifeline pipe closes)
    caller.join(timeout=30)
    assert not alive(second) and wait_until(lambda: not alive(child))
    assert "fork server died" in str(outcome.get("error")), outcome


def untimed(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("time ")]


def needs_forking() -> None:
    if not forking_enabled():
        pytest.skip("KRONOS_TEST_EXEC=1: the fork server is off for this run")


def test_cli_forks_and_gets_what_exec_gets(tmp_path):
    needs_forking()
    cli = Cli(tmp_path)
    synced = cli("sync", DEMO)
    assert synced.code == 0, synced.output
    args = ("predict", DEMO, "--input", SAMPLE_CSV, "--pred-len", "3", "--seed", "7")
    forked = cli(*args)
    unknown_forked = cli("show", "no-such-entry")
    with exec_only():
        executed = cli(*args)
        unknown_executed = cli("show", "no-such-entry")
    assert (forked.via, executed.via) == ("fork", "exec")
    assert forked.code == executed.code == 0, forked.output
    assert forked.stdout == executed.stdout
    assert untimed(forked.stderr) == untimed(executed.stderr)
    assert "time " in forked.stderr  # the one line that differs: a fork skips the imports
    assert unknown_forked.code == unknown_executed.code == 4
    assert unknown_forked.stderr == unknown_executed.stderr and unknown_forked.stdout == unknown_executed.stdout


def test_cli_execs_where_a_fork_would_change_the_test(tmp_path, monkeypatch):
    needs_forking()
    cli = Cli(tmp_path)
    assert cli("--version").via == "fork"
    assert cli("--version", module=True).via == "exec"
    assert cli("--version", env={"PYTHONPATH": cli.env()["PYTHONPATH"] + os.pathsep + str(tmp_path)}).via == "exec"
    monkeypatch.setenv("KRONOS_TEST_EXEC", "1")
    assert cli("--version").via == "exec"


@pytest.mark.real_exec
def test_the_real_exec_marker_execs(tmp_path):
    result = Cli(tmp_path)("--version")
    assert result.code == 0 and result.via == "exec", result
