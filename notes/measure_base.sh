#!/usr/bin/env bash
# "before" figures from an unchanged copy of HEAD's tree (/tmp/base, `git archive HEAD`),
# run with this worktree's venv (src is unchanged): notes/measure_base.sh FILE...
cd /tmp/base
for f in "$@"; do
  /usr/bin/time -f "before $f cpu=%U+%S wall=%e" -o /tmp/base_time.txt nice -n 5 /work/suite/.venv/bin/python -m pytest -q -n 0 -p no:cacheprovider "$f" > /tmp/base_last.txt 2>&1
  echo "$(cat /tmp/base_time.txt) :: $(tail -1 /tmp/base_last.txt)" >> /work/suite/notes/measurements.txt
done
