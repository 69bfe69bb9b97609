#!/usr/bin/env bash
# Shows that two builds of kpi-refresh publish the same refreshes. Runs both binaries on
#   (a) the sample in input/: refreshes 2026-09, 2026-10 and 2026-11 in sequence on one output
#       folder, then `statement --all` of 2026-11;
#   (b) tests/fixtures/two_refreshes: refreshes 2026-05 then 2026-06;
#   (c) kpi-synth data (small: 300 partners, 13 deliveries of 3,000 lines), refreshes 2026-10
#       then 2026-11, with sheets of at most 2,000 rows so that continuation sheets are written;
# and compares, between the two builds:
#   - ledger/ and state/ byte for byte (diff -r);
#   - every CSV file byte for byte;
#   - manifest.json without what a run cannot repeat (started_at, finished_at, and the
#     workbooks' digests: their Run info sheet holds the run's times);
#   - every workbook (the refresh's and the statements) cell by cell with openpyxl: each sheet's
#     name and order, and each cell's place, value and number format, the Run info sheet left
#     out; and part by part, unzipped, byte for byte (styles, column formats and widths,
#     filters, charts), but for the Run info sheet's part and the cells' references, which a
#     cell may leave out (their places are compared cell by cell).
#
# Usage: benches/identical.sh OLD_KPI_REFRESH NEW_KPI_REFRESH [OLD_KPI_SYNTH NEW_KPI_SYNTH]
# The synthetic input is written by NEW_KPI_SYNTH (default: kpi-synth next to NEW_KPI_REFRESH);
# given OLD_KPI_SYNTH too, both generators' folders are compared first.
# Exit 0 when everything is the same, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")"
new="$(realpath "$2")"
new_synth="${4:-$(dirname "$new")/kpi-synth}"
old_synth="${3:-}"
work="$(mktemp -d /var/tmp/kpi-identical.XXXXXX)"
trap 'rm -rf "$work"' EXIT
status=0
fail() { echo "DIFFERENT: $*"; status=1; }

# run BIN OUT INPUT REFRESH: one refresh, "today" fixed inside its window.
run() {
    KPI_REFRESH_TODAY="$4-20" "$1" run --refresh "$4" --force --max-reject-rate 1 \
        --input "$3" --output "$2" >/dev/null 2>>"$2.log" || {
        echo "run $4 of $1 failed (exit $?), see below"; tail -5 "$2.log"; exit 2; }
}

# compare CASE: the outputs of old and new for one case.
compare() {
    local a="$work/$1/old" b="$work/$1/new"
    for d in ledger state; do
        diff -r "$a/$d" "$b/$d" >/dev/null || fail "$1: $d/ differs"
    done
    (cd "$a" && find . -type f | sort) >"$work/$1/files.old"
    (cd "$b" && find . -type f | sort) >"$work/$1/files.new"
    diff "$work/$1/files.old" "$work/$1/files.new" >/dev/null || fail "$1: not the same files"
    local csvs=0
    while read -r f; do
        csvs=$((csvs + 1))
        cmp -s "$a/$f" "$b/$f" || fail "$1: $f differs"
    done < <(grep '\.csv$' "$work/$1/files.old")
    python3 - "$a" "$b" "$1" "$work/$1/files.old" <<'PY' || status=1
import json, sys
import openpyxl

a, b, case, listing = sys.argv[1:5]
files = [l.strip()[2:] for l in open(listing)]
bad = 0

def manifest(path):
    m = json.load(open(path))
    m.pop("started_at", None)
    m.pop("finished_at", None)
    for o in m.get("outputs", []):
        if o.get("path", "").endswith(".xlsx"):
            o.pop("sha256", None)
    return m

def cells(path):
    book = openpyxl.load_workbook(path, read_only=True)
    out = []
    for ws in book.worksheets:
        if ws.title == "Run info":
            out.append((ws.title, None))
            continue
        rows = [tuple((c.value, getattr(c, "number_format", None)) for c in row)
                for row in ws.iter_rows()]
        out.append((ws.title, rows))
    book.close()
    return out

def parts(path):
    """Every part of the package, as bytes, but the Run info sheet's: styles, column formats,
    widths, filters and charts included."""
    import re, zipfile
    z = zipfile.ZipFile(path)
    book = z.read("xl/workbook.xml").decode()
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    skip = set()
    m = re.search(r'<sheet name="Run info" sheetId="\d+" r:id="(rId\d+)"', book)
    if m:
        target = re.search(r'Id="%s"[^>]*Target="([^"]+)"' % m.group(1), rels)
        target = target or re.search(r'Target="([^"]+)"[^>]*Id="%s"' % m.group(1), rels)
        skip.add("xl/" + target.group(1))
    elif "Run info" in book:
        raise SystemExit(f"{path}: cannot find the Run info sheet's part")
    # (A cell's reference names its place, which the cells compare: here it is left out.)
    def part(n):
        data = z.read(n)
        if n.startswith("xl/worksheets/sheet"):
            data = re.sub(rb'<c r="[A-Z]+[0-9]+"', b"<c", data)
        return data
    return {n: part(n) for n in z.namelist() if n not in skip}

books = 0
for f in files:
    if f.endswith("manifest.json"):
        if manifest(f"{a}/{f}") != manifest(f"{b}/{f}"):
            print(f"DIFFERENT: {case}: {f} (times and workbook digests left out)")
            bad = 1
    elif f.endswith(".xlsx"):
        books += 1
        x, y = cells(f"{a}/{f}"), cells(f"{b}/{f}")
        if x != y:
            names = [s[0] for s in x], [s[0] for s in y]
            which = [n for (n, r), (m, s) in zip(x, y) if (n, r) != (m, s)]
            print(f"DIFFERENT: {case}: {f} cells (sheets {names[0] if names[0] != names[1] else which})")
            bad = 1
        p, q = parts(f"{a}/{f}"), parts(f"{b}/{f}")
        if p != q:
            which = sorted(n for n in set(p) | set(q) if p.get(n) != q.get(n))
            print(f"DIFFERENT: {case}: {f} parts {which}")
            bad = 1
print(f"{case}: {books} workbooks compared cell by cell")
sys.exit(bad)
PY
    echo "$1: $(wc -l <"$work/$1/files.old") files, $csvs CSV files compared"
}

# (a) the sample
for side in old new; do
    bin=${!side}
    mkdir -p "$work/sample/$side"
    for r in 2026-09 2026-10 2026-11; do run "$bin" "$work/sample/$side" input "$r"; done
    KPI_REFRESH_TODAY=2026-11-20 "$bin" statement --all --refresh 2026-11 --input input \
        --output "$work/sample/$side" >/dev/null 2>>"$work/sample/$side.log"
done
compare sample

# (b) the fixture of two refreshes
for side in old new; do
    mkdir -p "$work/fixture/$side"
    for r in 2026-05 2026-06; do
        run "${!side}" "$work/fixture/$side" tests/fixtures/two_refreshes/input "$r"
    done
done
compare fixture

# (c) synthetic data
synth() { "$1" --out "$2" --partners 300 --lines-per-delivery 3000 --deliveries 13 --seed 1 >/dev/null 2>&1; }
synth "$new_synth" "$work/synth-input"
if [ -n "$old_synth" ]; then
    synth "$old_synth" "$work/synth-input-old"
    diff -r "$work/synth-input-old" "$work/synth-input" >/dev/null || fail "kpi-synth's input differs"
fi
for side in old new; do
    mkdir -p "$work/synth/$side"
    for r in 2026-10 2026-11; do
        KPI_REFRESH_SHEET_ROWS=2000 run "${!side}" "$work/synth/$side" "$work/synth-input" "$r"
    done
done
compare synth

if [ "$status" = 0 ]; then echo "IDENTICAL"; else echo "NOT IDENTICAL"; fi
exit "$status"
