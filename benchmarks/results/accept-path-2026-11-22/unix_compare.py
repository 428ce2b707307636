import sys
sys.path.insert(0, "/work/main/benchmarks")
import behind_nginx as bn
from harness import servers as st
base = st.BY_NAME["fastwsgi-c"]
spec = st.ServerSpec("fastwsgi-c-oneunix", "fastwsgi", True, st._fastwsgi("c"),
                     "EXPERIMENT: read at accept on uwsgi unix", env=(("FASTWSGI_EXP_ONEUNIX", "1"),), expect_backend="c")
st.SERVERS.append(spec); st.BY_NAME[spec.name] = spec
cfg = bn.Config("fastwsgi-c-uwsgi-unix-one", "fastwsgi-c-oneunix", "uwsgi", bn._fastwsgi_bind("uwsgi://"),
                "EXPERIMENT one accept per wakeup on UNIX", needs_fastwsgi_uwsgi=True, unix=True)
bn.CONFIGS.append(cfg); bn.BY_NAME[cfg.name] = cfg
sys.exit(bn.main(sys.argv[1:]))
