-- KPI totals of the refresh window, per partner and KPI category.
-- Tables: lines (accepted ledger lines of deliveries <= R-1), params (one row: window_from,
-- window_to as month indices). KPI sums are rounded to 4 decimals, as they are compared.
SELECT
    l.partner_id,
    l.category,
    ROUND(SUM(l.kpi_value), 4) AS kpi,
    SUM(l.revenue_usd) AS revenue_usd,
    COUNT(*) AS lines
FROM lines AS l
CROSS JOIN params AS p
WHERE l.month_index >= p.window_from
  AND l.month_index <= p.window_to
GROUP BY l.partner_id, l.category
ORDER BY l.partner_id, l.category
