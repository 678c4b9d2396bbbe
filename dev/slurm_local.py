#!/usr/bin/env python3
"""A real single-node Slurm cluster on this machine, to test the workflow's SLURM profile (profiles/slurm)
against a real scheduler. Debian (or Ubuntu) with root; no systemd, cgroups or accounting database needed.

    python dev/slurm_local.py start    # apt-get install slurm-wlm munge if missing, write
                                       # /etc/slurm/slurm.conf, start munged, slurmctld, slurmd, wait
                                       # until the node is idle
    python dev/slurm_local.py status
    python dev/slurm_local.py stop     # cancel the cluster's jobs, stop every daemon `start` started (by pid),
                                       # remove the slurm.conf it wrote (a conf naming a dead controller
                                       # makes every scontrol, so every Snakemake start, wait ~9 s)

The cluster mirrors what profiles/slurm expects of a real one: partitions `cpu` (default) and `gpu` on
one node, the node's real CPUs, two fake GPUs (gres gpu:fake, no device: torch in a job still sees no GPU)
and a large declared memory (SlurmdParameters=config_overrides; memory is bookkeeping only here, nothing
enforces it), so that the profile's paper-scale --mem and --gpus requests are accepted unchanged. No
accounting: use `slurm-status-command: squeue` (MinJobAge is 600 s, so squeue still lists finished jobs).

`start` refuses to overwrite a /etc/slurm/slurm.conf it did not write, and reuses a cluster of its own that is
already up (then it reports that it started nothing, and a caller that started nothing should not stop it).
What it started is recorded in STATE_FILE; `stop` stops exactly that, by pid, and is safe to call at any time,
also after a partial start, and twice. It never touches a munged it did not start.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MARKER = "# written by ganaug dev/slurm_local.py"
STATE_DIR = Path("/var/lib/slurm")
LOG_DIR = Path("/var/log/slurm")
STATE_FILE = Path("/run/ganaug_slurm_local.json")
LOCK_FILE = Path("/run/ganaug_slurm_local.lock")
PIDFILES = {"munged": Path("/run/munge/munged.pid"), "slurmctld": Path("/run/slurmctld.pid"),
            "slurmd": Path("/run/slurmd.pid")}
PACKAGES = ["slurm-wlm", "munge"]
BINARIES = ["slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "scontrol", "scancel"]
PARTITIONS = ("cpu", "gpu")  # the names profiles/slurm uses
FAKE_GPUS = 2
DECLARED_MEM_MB = 512_000


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run on this machine (not root, not Debian, packages not installable): skip, don't fail."""


@contextlib.contextmanager
def exclusive(wait: float = 900):
    """Hold the cluster alone (one test session at a time: another one's `stop` would cancel our jobs);
    SlurmUnavailable when another holder keeps it longer than `wait` seconds."""
    with open(LOCK_FILE, "a") as f:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SlurmUnavailable(f"another session held the local cluster ({LOCK_FILE}) "
                                           f"for {wait:.0f} s")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def why_not() -> str | None:
    """Why a local cluster cannot be set up here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (installs packages, writes /etc/slurm, starts daemons)"
    if not Path("/etc/debian_version").exists():
        return "needs a Debian-based system (installs slurm-wlm and munge with apt-get)"
    if not all(shutil.which(b) for b in BINARIES) and not shutil.which("apt-get"):
        return "Slurm is not installed and apt-get is missing"
    return None


def _run(cmd, timeout=60, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for d in ("/usr/sbin", "/sbin", "/usr/bin")
                                       if (p := Path(d) / name).exists()), None)


def install(timeout: float = 600) -> None:
    """apt-get install slurm-wlm munge unless the binaries are there; SlurmUnavailable when that fails."""
    if all(_which(b) for b in BINARIES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    try:
        run = _run(cmd, timeout=timeout, check=False, env=env)
        if run.returncode != 0:  # stale package lists on a fresh machine
            _run(["apt-get", "update"], timeout=timeout, check=False, env=env)
            run = _run(cmd, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"`{' '.join(cmd)}` took more than {timeout:.0f} s") from None
    if run.returncode != 0 or not all(_which(b) for b in BINARIES):
        tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
        raise SlurmUnavailable(f"could not install {' '.join(PACKAGES)} with apt-get: {' | '.join(tail)}")


def _alive(pid: int, name: str) -> bool:
    """pid runs and is `name` (a recycled pid of another program is not ours)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    if not comm.startswith(name[:15]):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _pid_from(pidfile: Path, name: str) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid, name) else None


def _load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {"started": {}}


def _save_state(state: dict) -> None:
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, STATE_FILE)


def node_memory_mb() -> int:
    run = _run([_which("slurmd"), "-C"], timeout=30)
    m = re.search(r"RealMemory=(\d+)", run.stdout)
    if not m:
        raise RuntimeError(f"`slurmd -C` printed no RealMemory: {run.stdout!r}")
    return int(m.group(1))


def config_text(host: str, cpus: int, mem_mb: int) -> tuple[str, str]:
    """slurm.conf and gres.conf of the one-node cluster."""
    partitions = "\n".join(f"PartitionName={p} Nodes={host} Default={'YES' if p == 'cpu' else 'NO'} "
                           "MaxTime=INFINITE State=UP OverSubscribe=NO" for p in PARTITIONS)
    node = (f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={DECLARED_MEM_MB} "
            f"Gres=gpu:fake:{FAKE_GPUS} State=UNKNOWN")
    slurm = f"""{MARKER}: a one-node test cluster (start / stop with that script)
ClusterName=ganaug-local
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
StateSaveLocation={STATE_DIR}/slurmctld
SlurmdSpoolDir={STATE_DIR}/slurmd
SlurmctldPidFile={PIDFILES['slurmctld']}
SlurmdPidFile={PIDFILES['slurmd']}
SlurmctldLogFile={LOG_DIR}/slurmctld.log
SlurmdLogFile={LOG_DIR}/slurmd.log
# the node's real memory is {mem_mb} MB; it declares {DECLARED_MEM_MB} so that paper-scale --mem requests are
# accepted (config_overrides: slurmd does not drain the node for it; nothing enforces memory without cgroups)
SlurmdParameters=config_overrides
GresTypes=gpu
{node}
{partitions}
"""
    gres = f"{MARKER}\n" + "".join(f"NodeName={host} Name=gpu Type=fake File={f}\n"
                                   for f in ("/dev/null", "/dev/zero")[:FAKE_GPUS])
    return slurm, gres


def _ours(path: Path) -> bool:
    return path.exists() and MARKER in path.read_text(errors="replace")


def _check_ours(path: Path) -> None:
    if path.exists() and not _ours(path):
        raise SlurmUnavailable(f"{path} exists and was not written by dev/slurm_local.py: not overwriting it")


def _write(path: Path, text: str) -> None:
    _check_ours(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _node_state() -> str:
    """The node's state ('idle', 'mixed', 'drained', ...; sinfo prints it once per partition)."""
    run = _run([_which("sinfo"), "-h", "-N", "-o", "%T"], timeout=10, check=False)
    states = set(run.stdout.split()) if run.returncode == 0 else set()
    return states.pop() if len(states) == 1 else " ".join(sorted(states))


def _log_tail(name: str, n: int = 15) -> str:
    try:
        return "\n".join((LOG_DIR / f"{name}.log").read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _start_daemon(name: str, cmd: list[str], state: dict) -> None:
    pidfile = PIDFILES[name]
    pidfile.unlink(missing_ok=True)
    run = _run(cmd, timeout=30, check=False)
    pid = None
    for _ in range(100):  # the daemon forks and writes its pid file
        pid = _pid_from(pidfile, name)
        if pid:
            break
        time.sleep(0.05)
    if not pid:
        raise RuntimeError(f"{name} did not start (rc {run.returncode}): {run.stdout}{run.stderr}\n"
                           f"{_log_tail(name)}")
    state["started"][name] = pid
    _save_state(state)


def _munge_works() -> bool:
    try:
        enc = _run([_which("munge"), "-n"], timeout=10, check=False)
        dec = _run([_which("unmunge")], input=enc.stdout, timeout=10, check=False)
    except (OSError, TypeError, subprocess.TimeoutExpired):
        return False
    return enc.returncode == 0 and dec.returncode == 0


def _start_munge(state: dict) -> None:
    if _munge_works():
        return  # someone's munged serves already: use it, never stop it
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        _run([_which("mungekey"), "--create"], timeout=30)
    shutil.chown(key, "munge", "munge")
    key.chmod(0o600)
    _run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], timeout=10)
    _start_daemon("munged", ["runuser", "-u", "munge", "--", _which("munged")], state)
    for _ in range(50):
        if _munge_works():
            return
        time.sleep(0.1)
    raise RuntimeError("munged started but `munge -n | unmunge` fails")


def running() -> bool:
    """Our cluster answers: the config is ours, both Slurm daemons live, the node is usable."""
    if not CONF.exists() or MARKER not in CONF.read_text(errors="replace"):
        return False
    if not all(_pid_from(PIDFILES[d], d) for d in ("slurmctld", "slurmd")):
        return False
    return _node_state() in ("idle", "mixed", "allocated")


def start(install_timeout: float = 600, wait: float = 60) -> dict:
    """Install if needed, configure and start the cluster; returns {'host', 'partitions', 'started'}: the
    daemons this call started (none when the cluster was up already: then leave it to whoever started it).
    SlurmUnavailable when this machine cannot host it; RuntimeError when it should, but does not, start."""
    reason = why_not()
    if reason:
        raise SlurmUnavailable(reason)
    install(install_timeout)
    host = socket.gethostname().split(".")[0]
    state = _load_state()
    info = {"host": host, "partitions": list(PARTITIONS)}
    if running():
        return {**info, "started": {}}
    slurm, gres = config_text(host, os.cpu_count() or 1, node_memory_mb())
    for path in (CONF, GRES_CONF):  # refuse before stopping anything
        _check_ours(path)
    # leftovers of an earlier cluster that is not answering: ours to stop
    stop()
    _write(CONF, slurm)
    _write(GRES_CONF, gres)
    state = {"started": {}}
    _save_state(state)
    for d in ("slurmctld", "slurmd"):  # a DRAIN reason survives restarts: start from a clean state
        shutil.rmtree(STATE_DIR / d, ignore_errors=True)
        (STATE_DIR / d).mkdir(parents=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    _start_munge(state)
    _start_daemon("slurmctld", [_which("slurmctld")], state)
    _start_daemon("slurmd", [_which("slurmd")], state)
    deadline = time.monotonic() + wait
    node = ""
    while time.monotonic() < deadline:
        node = _node_state()
        if node == "idle":
            return {**info, "started": dict(state["started"])}
        time.sleep(0.2)
    raise RuntimeError(f"the node is '{node}', not idle, after {wait:.0f} s\n{_log_tail('slurmctld')}\n"
                       f"{_log_tail('slurmd')}")


def _terminate(pid: int, name: str, wait: float = 10) -> None:
    if not _alive(pid, name):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not _alive(pid, name):
            return
        time.sleep(0.1)
    if _alive(pid, name):
        os.kill(pid, signal.SIGKILL)


def stop() -> list[str]:
    """Cancel the cluster's jobs, stop the daemons `start` started (by pid) and remove the slurm.conf and
    gres.conf it wrote; returns the daemons' names.
    Never raises for a daemon that is already gone."""
    state = _load_state()
    started = state.get("started", {})
    stopped = []
    if started.get("slurmctld") and _alive(started["slurmctld"], "slurmctld") and _which("scancel"):
        # every job of this cluster is a test's: cancel them and give slurmd time to kill their steps
        try:
            _run([_which("scancel"), "--full", "--user", "root"], timeout=15, check=False)
            for _ in range(50):
                out = _run([_which("squeue"), "-h", "-t", "RUNNING,COMPLETING,PENDING", "-o", "%i"],
                           timeout=10, check=False).stdout
                if not out.strip():
                    break
                time.sleep(0.2)
        except (OSError, subprocess.TimeoutExpired):
            pass
    for name in ("slurmd", "slurmctld", "munged"):
        pid = started.get(name)
        if pid:
            try:
                _terminate(int(pid), name)
            except ProcessLookupError:
                pass
            stopped.append(name)
    STATE_FILE.unlink(missing_ok=True)
    # A slurm.conf naming a controller that is down makes every `scontrol` wait ~9 s for it, and the
    # Slurm executor plugin runs `scontrol show config` whenever Snakemake starts: remove ours.
    for path in (CONF, GRES_CONF):
        if _ours(path):
            path.unlink()
    return stopped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["start", "stop", "status"])
    args = ap.parse_args(argv)
    if args.command == "start":
        try:
            info = start()
        except SlurmUnavailable as e:
            print(f"Slurm unavailable here: {e}", file=sys.stderr)
            return 2
        print(f"Slurm up on {info['host']}: partitions {', '.join(info['partitions'])}; "
              f"started {', '.join(info['started']) or 'nothing (already running)'}")
    elif args.command == "stop":
        stopped = stop()
        print(f"stopped {', '.join(stopped) or 'nothing'}")
    else:
        up = running()
        print(f"{'up' if up else 'down'}; started by this script: {_load_state().get('started', {})}")
        if up:
            print(_run([_which("sinfo")], timeout=10, check=False).stdout)
        return 0 if up else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
