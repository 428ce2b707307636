"""USR2 -> WINCH -> TERM under a client connecting in a loop; prints answers and failures."""
import os, signal, sys, time, tempfile
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from tests.functional.serverproc import ServerProcess
from tests.functional.test_upgrade import Load, pid_in, wait_for
from tests.functional.ops import wait_booted, wait_children, wait_gone
d = tempfile.mkdtemp(); pidfile = __import__("pathlib").Path(d) / "p"
s = ServerProcess(["--bind", "127.0.0.1:0", "-w", "2", "--pid", str(pidfile), "tests.functional.ops:ops_app"]).start()
wait_booted(s, 2); old = s.proc.pid
load = Load(s.port); time.sleep(2); t0 = time.monotonic(); a0 = load.answers
s.signal(signal.SIGUSR2)
new = wait_for(lambda: pid_in(pidfile) not in (None, old) and pid_in(pidfile), "new")
wait_children(new, 2); time.sleep(1)
s.signal(signal.SIGWINCH); time.sleep(1.5)
s.signal(signal.SIGTERM); s.wait(15); time.sleep(2)
load.stop()
print(f"answers during the hand-over ({time.monotonic()-t0:.1f} s): {load.answers - a0}, total {load.answers}, failures {len(load.failures)} {load.failures[:3]}")
os.kill(new, signal.SIGTERM); wait_gone(new)
