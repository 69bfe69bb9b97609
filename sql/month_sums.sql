-- One delivery's sums per partner, KPI category and month: what every KPI figure is built
-- from. The ledger keeps them beside the delivery's lines (sums.parquet), so that a refresh
-- reads some 60,000 sums per delivery instead of its 500,000 lines. Sorted, so that the file
-- is the same at every run. The sums are exact decimals: kpi_value at 4 places, revenue_usd at
-- 16. Table: lines (one delivery's accepted lines).
SELECT
    l.partner_id,
    l.category,
    l.month_index,
    SUM(l.kpi_value) AS kpi_value,
    SUM(l.revenue_usd) AS revenue_usd,
    COUNT(*) AS lines
FROM lines AS l
GROUP BY l.partner_id, l.category, l.month_index
ORDER BY l.partner_id, l.category, l.month_index
