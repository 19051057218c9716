#!/usr/bin/env bash
# One test, before (/tmp/base: HEAD's tree) and after (this worktree), OMP_NUM_THREADS=1:
# notes/measure_one.sh NODEID...
for id in "$@"; do
  for side in before after; do
    dir=/work/suite; [[ $side == before ]] && dir=/tmp/base
    (cd $dir && OMP_NUM_THREADS=1 /usr/bin/time -f "$side(one) $id cpu=%U+%S wall=%e" -o /tmp/one_time.txt \
      nice -n 5 /work/suite/.venv/bin/python -m pytest -q -n 0 -p no:cacheprovider "$id" > /tmp/one_last.txt 2>&1)
    echo "$(cat /tmp/one_time.txt) :: $(tail -1 /tmp/one_last.txt)" >> /work/suite/notes/measurements.txt
  done
done
