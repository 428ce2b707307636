import sys
sys.path.insert(0, "/work/main/benchmarks")
import run
from harness import servers as st
base = st.BY_NAME["fastwsgi-c"]
spec = st.ServerSpec("fastwsgi-c-defer", "fastwsgi", True, base.argv if hasattr(base,'argv') else st._fastwsgi("c"),
                     "EXPERIMENT: TCP_DEFER_ACCEPT on the HTTP listener", env=(("FASTWSGI_EXP_DEFER", "1"),), expect_backend="c")
st.SERVERS.append(spec); st.BY_NAME[spec.name] = spec
sys.exit(run.main(sys.argv[1:]))
