-- KPI totals of the refresh window per partner and KPI category: exact decimal sums. KPI sums
-- are rounded to 4 decimals, as they are compared with thresholds, after the query
-- (exact::round4_column: half away from zero; SQL ROUND would round half to even), and a
-- partner's revenue after adding up its categories. Table: window_sums.
SELECT
    s.partner_id,
    s.category,
    SUM(s.kpi_value) AS kpi,
    SUM(s.revenue_usd) AS revenue_usd,
    SUM(s.lines) AS lines
FROM window_sums AS s
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, s.category
