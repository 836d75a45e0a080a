#!/usr/bin/env bash
# The long run's random arm as a 60-network random search: each seed's first 60 child records
# and its recheck, with the pinned start network, copied into a new study folder.
#
#     bash benchmarks/random60_from_long.sh benchmarks/data/cpu_v2_long benchmarks/data/cpu_v2_bo60
#
# Random search does not adapt and its episode seeds do not depend on the budget
# (agents/run_folder.py, episode_seed), so these are the records a 60-network random run on
# the same start network writes; `compare` reads them back as finished runs. Refuses to
# overwrite a folder that already holds a random arm.
set -euo pipefail
src=${1:?usage: random60_from_long.sh SRC_STUDY DST_STUDY}
dst=${2:?usage: random60_from_long.sh SRC_STUDY DST_STUDY}
nets=60
if [ -e "$dst/random" ]; then
  echo "$dst/random exists: not overwriting it" >&2
  exit 1
fi
mkdir -p "$dst/start"
cp "$src"/start/* "$dst/start/"
for run in "$src"/random/seed-*; do
  seed=${run##*-}
  out="$dst/random/seed-$seed"
  mkdir -p "$out"
  if [ "$(wc -l < "$run/children.jsonl")" -lt "$nets" ]; then
    echo "$run/children.jsonl holds fewer than $nets records" >&2
    exit 1
  fi
  head -n "$nets" "$run/children.jsonl" > "$out/children.jsonl"
  cp "$run/recheck.jsonl" "$out/recheck.jsonl"
  python - "$run/config.json" "$out/config.json" "$dst" "$seed" "$nets" <<'PY'
import json
import sys

src, dst, root, seed, nets = sys.argv[1:]
config = json.load(open(src))
config.update(nets=int(nets), out=f"{root}/random/seed-{seed}", store=f"{root}/store.sqlite")
open(dst, "w").write(json.dumps(config, indent=2, sort_keys=True) + "\n")
PY
done
echo "copied $(ls -d "$dst"/random/seed-* | wc -l) random runs of $nets networks to $dst"
