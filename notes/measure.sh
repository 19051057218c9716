#!/usr/bin/env bash
# Per-file CPU (user+sys, children included) and wall with -n 0: notes/measure.sh LABEL FILE...
label=$1; shift
cd /work/suite
for f in "$@"; do
  /usr/bin/time -f "$label $f cpu=%U+%S wall=%e" -o /tmp/suite_time.txt nice -n 5 uv run pytest -q -n 0 -p no:cacheprovider "$f" > /tmp/suite_last.txt 2>&1
  echo "$(cat /tmp/suite_time.txt) :: $(tail -1 /tmp/suite_last.txt)" >> notes/measurements.txt
done
