-- The split of each partner's KPI change between the previous refresh P and this refresh R,
-- per KPI category, from the accepted lines as the ledger holds them in R:
--   entered: lines dated in R's window but not in P's;
--   left_window: minus the lines of deliveries before P dated in P's window but not in R's;
--   late: lines of deliveries P or later dated in both windows.
-- Lines dated in neither window are dropped by the join. Sums are rounded to 4 decimals.
-- Tables: lines (partner_id, category, month_index, kpi_value, delivery), change_months,
-- change_deliveries.
SELECT
    l.partner_id,
    l.category,
    ROUND(SUM(CASE WHEN m.in_refresh = 1 AND m.in_previous = 0
                   THEN l.kpi_value ELSE 0.0 END), 4) AS entered,
    ROUND(0.0 - SUM(CASE WHEN m.in_previous = 1 AND m.in_refresh = 0 AND d.after_previous = 0
                         THEN l.kpi_value ELSE 0.0 END), 4) AS left_window,
    ROUND(SUM(CASE WHEN m.in_previous = 1 AND m.in_refresh = 1 AND d.after_previous = 1
                   THEN l.kpi_value ELSE 0.0 END), 4) AS late
FROM lines AS l
JOIN change_months AS m ON m.month_index = l.month_index
JOIN change_deliveries AS d ON d.delivery = l.delivery
GROUP BY l.partner_id, l.category
ORDER BY l.partner_id, l.category
