#!/usr/bin/env bash
# Measures `okrd ingest` of N points (default 1,000,000) into SQLite and into
# PostgreSQL, beside PostgreSQL's own binary COPY of the same rows into the
# same `points` table, in one run. Prints figures; asserts nothing.
#
#   scripts/measure-ingest.sh [N]      (PostgreSQL admin URL: OKRD_BENCH_POSTGRES_URL)
set -euo pipefail
export PGOPTIONS='-c client_min_messages=warning'
cd "$(dirname "$0")/.."
n=${1:-1000000}
admin=${OKRD_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=okrd_measure_ingest
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q
okrd=${CARGO_TARGET_DIR:-$PWD/target}/release/okrd

# 1,000 series (metric x plan x region) of hourly points.
python3 - "$n" "$work/points.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
series = 1000
per = (n + series - 1) // series
start = 1790812800  # 2026-10-01T00:00:00Z
with open(path, "w") as f:
    f.write("metric,ts,value,plan,region\n")
    written = 0
    for s in range(series):
        metric = f"metric_{s % 10}"
        plan, region = f"plan{s // 10 % 10}", f"r{s // 100}"
        for i in range(per):
            if written == n:
                break
            f.write(f"{metric},{start + 3600 * i},{(s * 7 + i) % 1000 / 10},{plan},{region}\n")
            written += 1
PY
echo "generated $n points in $(du -h "$work/points.csv" | cut -f1) of CSV"

run() { # label, url
  local out
  out=$(cd "$work" && OKRD_DATABASE__URL=$2 "$okrd" ingest points.csv)
  echo "$1: $out"
}

run "sqlite" "sqlite://$work/okrd.db"
run "sqlite, again (every point already stored)" "sqlite://$work/okrd.db"

psql -q "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
url=$(python3 -c "import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path='/$db').geturl())" "$admin")
run "postgres" "$url"
run "postgres, again (every point already stored: idempotent upsert)" "$url"

rows=$(psql -Atq "$url" -c "SELECT count(*) FROM points")
psql -q "$url" -c "\\copy points TO '$work/points.bin' WITH (FORMAT binary)"
psql -q "$url" -c "TRUNCATE points"
now() { python3 -c "import time; print(time.time())"; }
start=$(now)
psql -q "$url" -c "\\copy points FROM '$work/points.bin' WITH (FORMAT binary)"
end=$(now)
python3 -c "import sys; r,s=int(sys.argv[1]),float(sys.argv[2]); print(f'postgres binary COPY of the same {r} rows into the same table: {s:.2f}s ({r/s:.0f} rows/s)')" "$rows" "$(python3 -c "print($end - $start)")"
psql -q "$admin" -c "DROP DATABASE $db"
