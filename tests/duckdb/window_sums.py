"""The window sums of a refresh, computed by DuckDB straight from the ledger's Parquet files.

Usage: python3 window_sums.py OUTPUT_FOLDER REFRESH WINDOW_FROM WINDOW_TO

Reads `OUTPUT_FOLDER/ledger/delivery=*/accepted.parquet` as the Hive-partitioned dataset it
is (docs/ledger.md) and prints, as CSV, each partner's KPI sum per category and its revenue
in USD over the window's invoice months, from the deliveries before the refresh month
(docs/rules.md §5), then each partner's totals on a row with an empty category. The ledger's
amounts are decimals, so DuckDB's sums are exact; every figure is rounded to 4 decimals (half
away from zero), as the partners file is.
"""

import csv
import sys

import duckdb

out, refresh, window_from, window_to = sys.argv[1:5]
rows = duckdb.execute(
    """
    SELECT partner_id, category,
           round(sum(kpi_value), 4) AS kpi_value,
           round(sum(revenue_usd), 4) AS revenue_usd
    FROM read_parquet(? || '/ledger/delivery=*/accepted.parquet', hive_partitioning = true)
    WHERE delivery < ? AND invoice_month BETWEEN ? AND ?
    GROUP BY GROUPING SETS ((partner_id, category), (partner_id))
    ORDER BY partner_id, category NULLS FIRST
    """,
    [out, refresh, window_from, window_to],
).fetchall()
writer = csv.writer(sys.stdout, lineterminator="\n")
writer.writerow(["partner_id", "category", "kpi_value", "revenue_usd"])
for partner_id, category, kpi_value, revenue_usd in rows:
    writer.writerow([partner_id, category or "", str(kpi_value), str(revenue_usd)])
