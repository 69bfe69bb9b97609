#!/usr/bin/env bash
# The refresh benchmark. Generates the "large" profile with kpi-synth (20,000 partners, 13
# deliveries of 500,000 lines; SCALE multiplies the lines) and measures in release mode:
#   (a) full rebuild: `run` on an empty output folder (ingest 13 deliveries, compute, publish)
#   (b) monthly run: the ledger holds 12 deliveries; ingest the 13th, compute, publish
#   (c) monthly run after a roster change (one partner added, one renamed): the added
#       partner is named by rows of every delivery, so every partition is judged again from
#       its kept parsed rows
#   (d) partner statements of the refresh (c) published: one partner, then every partner
#   (e) monthly run after the second delivery is sent again corrected (one line added): it is
#       parsed again, and the eleven after it judged again by difference, their rows unchanged
# and prints wall time, peak resident memory, per-stage times and rows per second.
#
# Usage: benches/bench.sh [SCALE]     (default 1; the generated input is kept for reruns)
# BENCH_BIN=DIR measures the kpi-refresh (and kpi-synth) binaries in DIR instead of this
# checkout's build, to compare two versions on the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/kpi-refresh-target}"
if [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release --bins --quiet
fi
bin="${BENCH_BIN:-$CARGO_TARGET_DIR/release}"
scale="${1:-1}"
partners="${PARTNERS:-20000}"
lines=$((500000 * scale))
# The generator's version is part of the folder's name: a changed generator writes anew.
work="${BENCH_DIR:-/var/tmp/kpi-refresh-bench}/g2-p${partners}-l${lines}"

if [ ! -f "$work/input/.complete" ]; then
    rm -rf "$work" && mkdir -p "$work"
    "$bin/kpi-synth" --out "$work/input" --partners "$partners" --lines-per-delivery "$lines" --deliveries 13 --seed 1
    touch "$work/input/.complete"
fi
# The roster as generated, kept once: case (c) changes the input's copy and puts it back.
[ -f "$work/partners.orig.csv" ] || cp "$work/input/partners.csv" "$work/partners.orig.csv"
cp "$work/partners.orig.csv" "$work/input/partners.csv"
# Likewise the file of the second delivery that case (e) sends again corrected.
corrected="$work/input/extracts/2025-11/$(ls "$work/input/extracts/2025-11" | head -1)"
[ -f "$work/corrected.orig.csv" ] || cp "$corrected" "$work/corrected.orig.csv"
cp "$work/corrected.orig.csv" "$corrected"

run() { # run NAME REFRESH: one refresh with JSON logs kept in $work/NAME.log
    "$bin/kpi-refresh" --log-format json run --refresh "$2" --force --max-reject-rate 0.2 \
        --input "$work/input" --output "$work/output" 2>"$work/$1.log" >/dev/null
}

report() { # report NAME: the figures of one measured run
    python3 - "$work/$1.log" "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def stage(prefix):
    return next((l for l in lines if l.get("message", "").startswith(prefix)), {})
done, ingest = stage("refresh done"), stage("ingest: ledger up to date")
wall = done.get("ms", 0) / 1000
print(f"{sys.argv[2]}: wall {wall:.2f} s, peak memory {done.get('peak_rss_mib', 0)} MiB")
read = sum(l.get("read", 0) for l in lines if l.get("message", "").startswith("ledger: delivery") and l.get("judged"))
judged = sum(1 for l in lines if l.get("message", "").startswith("ledger: delivery") and l.get("judged"))
# Stages in the order they start. Invoice detail's lines are selected ("detail") and its sheet
# written on a thread of its own from the end of ingest while kpi, renewal and directory run,
# so the times overlap.
for name, prefix in [("ingest", "ingest:"), ("detail", "invoice detail:"), ("kpi", "kpi:"),
                     ("renewal", "renewal:"), ("watch", "watch:"), ("directory", "directory:"),
                     ("report", "report: files staged"), ("publish", "publish:")]:
    ms = stage(prefix).get("ms", 0)
    extra = ""
    if name == "ingest" and ms:
        extra = f"  ({judged} deliveries judged, {read:,} rows, {read / (ms / 1000):,.0f} rows/s)"
    if name == "kpi" and ms:
        n = stage(prefix).get("lines_in_window", 0)
        extra = f"  ({n:,} lines in window, {n / (ms / 1000):,.0f} lines/s)"
    print(f"  {name:<10} {ms / 1000:7.2f} s{extra}")
PY
}

echo "profile: $partners partners, 13 deliveries of $lines lines ($work)"
rm -rf "$work/output"
run full 2026-11 && report full
rm -rf "$work/output"
run prepare 2026-10
run monthly 2026-11 && report monthly
echo "  workbook: $(du -k "$work/output/reports/2026-11/kpi-refresh-2026-11.xlsx" | cut -f1) KiB"
python3 - "$work/input/partners.csv" <<'PY'
import sys
path = sys.argv[1]
rows = open(path, encoding="utf-8").read().splitlines()
header, first = rows[0], rows[1].split(",")
first[1] = first[1] + " (renamed)"
rows[1] = ",".join(first)
# The generator's unknown-partner rows all name 9999999: adding it changes what the roster
# answers to every delivery, so every partition is judged again.
rows.append("9999999,Net New Learning AB,SE,none,,,1,no,no,yes,,,")
open(path, "w", encoding="utf-8").write("\n".join(rows) + "\n")
PY
run roster 2026-11 && report roster

statement() { # statement NAME ARGS...: one statement command, wall time and peak memory
    local name="$1"
    shift
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.time" "$bin/kpi-refresh" --log-format json \
        statement --refresh 2026-11 --input "$work/input" --output "$work/output" "$@" \
        2>"$work/$name.log" >/dev/null
    read -r wall rss user sys <"$work/$name.time"
    echo "$name: wall $wall s, peak memory $((rss / 1024)) MiB, cpu user $user s + sys $sys s"
}
# (c)'s refresh stands published: a statement reads only the output folder and program.toml.
rm -rf "$work/output/statements"
one=$(sed -n 2p "$work/output/reports/2026-11/partners-2026-11.csv" | cut -d, -f1)
statement statement-one --partner "$one"
statement statement-all --all
echo "  statements written: $(find "$work/output/statements/2026-11" -name '*.xlsx' | wc -l)," \
    "$(du -sk "$work/output/statements/2026-11" | cut -f1) KiB"

# (e) on (c)'s refresh, with (c)'s roster: one line added to the second delivery, for the
# roster's first partner under an invoice number of its own.
partner=$(sed -n 2p "$work/partners.orig.csv" | cut -d, -f1)
echo "INV-990000001,1,2025-11-03,Invoice,$partner,Exam Voucher,Kit,10.00,100.00,USD" >>"$corrected"
run corrected 2026-11 && report corrected
echo "  judged again by difference with no row changed: $(grep -c 'no row changed' "$work/corrected.log")"
cp "$work/corrected.orig.csv" "$corrected"
cp "$work/partners.orig.csv" "$work/input/partners.csv"
