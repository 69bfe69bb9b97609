-- Window sums per partner, KPI category and window month: the one scan of the ledger's lines
-- that every KPI figure is built from. Tables: lines (accepted ledger lines of deliveries
-- <= R-1), window_months (month_index, position).
SELECT
    l.partner_id,
    l.category,
    w.position,
    SUM(l.kpi_value) AS kpi_value,
    SUM(l.revenue_usd) AS revenue_usd,
    COUNT(*) AS lines
FROM lines AS l
JOIN window_months AS w ON w.month_index = l.month_index
GROUP BY l.partner_id, l.category, w.position
