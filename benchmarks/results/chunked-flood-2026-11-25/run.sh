#!/bin/sh
# run.sh TREE PARSER THREADS APP SCRIPT ARGS...: serve apps:APP from the fastwsgi in TREE on
# 127.0.0.1:8421 (--http-parser PARSER, --threads THREADS), run SCRIPT PORT ARGS..., stop the server.
here=$(cd "$(dirname "$0")" && pwd)
tree=$1 parser=$2 threads=$3 app=$4 script=$5
shift 5
cd "$tree" || exit 1
PYTHONPATH="$here" python -m fastwsgi --bind 127.0.0.1:8421 --http-parser "$parser" --threads "$threads" \
    --log-level warning "apps:$app" &
pid=$!
for _ in $(seq 50); do python -c "import socket; socket.create_connection(('127.0.0.1', 8421))" 2>/dev/null && break; sleep 0.1; done
python "$here/$script" 8421 "$@"
kill -9 "$pid"  # (application threads may be spinning: no graceful stop needed)
wait "$pid" 2>/dev/null
