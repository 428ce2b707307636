#!/bin/bash
# wait for the soak's nginx conf, then poll the backend: objects every 30 s, trim at 200 s and in the end idle
out=/tmp/s15/trim.jsonl; : > $out
for i in $(seq 1 60); do conf=$(ls -t /tmp/fastwsgi-soak-nginx-*/nginx/nginx.conf 2>/dev/null | head -1); [ -n "$conf" ] && [ $(( $(date +%s) - $(stat -c %Y $conf) )) -lt 30 ] && break; sleep 1; done
port=$(grep -o "server 127.0.0.1:[0-9]*" $conf | head -1 | cut -d: -f2); echo "port $port" >> /tmp/s15/trim.log
t0=$(date +%s)
poll() { for k in 1 2 3 4 5 6; do echo "{\"t\": $(( $(date +%s) - t0 )), \"what\": \"$1\", \"r\": $(curl -s -m 5 http://127.0.0.1:$port/$1)}" >> $out; done; }
while [ $(( $(date +%s) - t0 )) -lt 340 ]; do
  el=$(( $(date +%s) - t0 ))
  if [ $el -ge 260 ] && [ ! -f /tmp/s15/trimmed1 ]; then touch /tmp/s15/trimmed1; poll __trim; else poll __objects; fi
  sleep 30
done
while [ $(( $(date +%s) - t0 )) -lt 362 ]; do sleep 1; done; poll __trim
