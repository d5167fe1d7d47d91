#!/bin/bash
# fct_attribution's nightly cost before (BEFORE, default b390394: a table rebuilt each run) and
# after (AFTER, default HEAD: incremental) on the S shop plus one appended day (BENCHMARKS.md
# "Channels and attribution"). Work dir W (default /tmp/attr-bench); the last step is
# replay.py (CPU seconds of the model's statements).
set -euo pipefail
W=${W:-/tmp/attr-bench}; BEFORE=${BEFORE:-b390394}; AFTER=${AFTER:-HEAD}
REPO=$(cd "$(dirname "$0")/../.." && pwd); V=$REPO/.venv/bin
mkdir -p "$W" && cd "$W"
[ -f pii.key ] || $V/python -c "import secrets; print(secrets.token_hex(32))" > pii.key
export NIGHTJAR_PII_KEY=$(cat pii.key) DBT_SEND_ANONYMOUS_USAGE_STATS=false NIGHTJAR_DUCKDB_MEMORY_LIMIT=4GB \
       NIGHTJAR_DUCKDB_TEMP_DIRECTORY=$W/spill
ingest() { # data dir, warehouse (the dlt working dir is dropped: the state lives in the warehouse)
  rm -rf "$1/artifacts"
  NIGHTJAR_DATA_DIR=$1 NIGHTJAR_WAREHOUSE=$2 NIGHTJAR_SHOP_DB_URL=sqlite:///$1/shop.sqlite \
    $V/python -m nightjar.bench.steps ingest '{}' > "$2.ingest.log" 2>&1
}
dbtv() { # variant, warehouse, dbt arguments
  local v=$1 wh=$2; shift 2
  NIGHTJAR_WAREHOUSE=$wh NIGHTJAR_DATA_DIR=$W/shop-S-plus1 $V/dbt "$@" --project-dir "$W/$v/dbt_project" \
    --profiles-dir "$W/$v/dbt_project" --target-path "$W/$v/target" --log-path "$W/$v/logs"
}
if [ ! -d shop-S ]; then
  $V/nightjar simulate --out shop-S --start 2025-01-01 --days 365 --customers 2800 --seed 7
  rsync -a --exclude '*.duckdb*' --exclude artifacts shop-S/ shop-S-plus1/
  $V/nightjar simulate --out shop-S-plus1 --append-days 1
fi
[ -f wh0.duckdb ] || ingest "$W/shop-S" "$W/wh0.duckdb"   # the 365 days' raw layer
for v in before after; do
  rev=$BEFORE; [ $v = after ] && rev=$AFTER
  mkdir -p $v && rm -rf $v/dbt_project && git -C "$REPO" archive "$rev" dbt_project | tar -x -C $v
  cp wh0.duckdb $v/full.duckdb
  dbtv $v "$W/$v/full.duckdb" build --exclude test_type:unit --quiet
  cp $v/full.duckdb $v/night.duckdb
  ingest "$W/shop-S-plus1" "$W/$v/night.duckdb"
  # the nightly arguments, fct_attribution and its children left out: the warehouse as the
  # night leaves it just before fct_attribution
  mapfile -d '' args < <($V/python -c "
from nightjar.dbt_args import nightly_dbt_args
a = nightly_dbt_args('$W/$v/night.duckdb'); i = a.index('--exclude'); a.insert(i + 2, 'fct_attribution+')
print('\0'.join(a), end='')")
  dbtv $v "$W/$v/night.duckdb" "${args[@]}" --quiet
  for i in 1 2 3; do
    cp $v/night.duckdb $v/m.duckdb
    dbtv $v "$W/$v/m.duckdb" run --select fct_attribution fct_channel_daily --quiet
    $V/python -c "
import json; r = json.load(open('$W/$v/target/run_results.json'))
print('$v dbt node wall s', {x['unique_id'].split('.')[-1]: round(x['execution_time'], 3) for x in r['results']})"
  done
  cp $v/target/compiled/nightjar/models/marts/fct_attribution.sql $v/fct_attribution.compiled.sql
done
$V/python "$REPO/benchmarks/attribution/replay.py" "$W" 3
