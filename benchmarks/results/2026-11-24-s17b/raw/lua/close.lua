-- scenario close: hello world, Connection: close
wrk.method = "GET"
wrk.path = "/"
wrk.headers["Connection"] = "close"

-- Appended to every scenario script the harness hands to wrk (benchmarks/harness/scenarios.py).
-- done() prints one machine-readable line, so the harness never scrapes wrk's human-oriented text:
-- requests, bytes, errors and latency percentiles (wrk measures latency in microseconds).
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}, " ..
      "\"latency_us\": {\"p50\": %d, \"p90\": %d, \"p99\": %d, \"mean\": %.1f, \"max\": %d}}\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max))
end
