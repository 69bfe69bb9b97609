-- The split of each partner's KPI change between the previous refresh P and this refresh R,
-- per KPI category, from the accepted lines as the ledger holds them in R:
--   entered: lines dated in R's window but not in P's;
--   left_window: minus the lines of deliveries before P dated in P's window but not in R's
--     (what P counted and R no longer does);
--   late: lines of deliveries P or later dated in both windows.
-- Lines dated in neither window are dropped by the join; lines of deliveries before P dated in
-- both windows were counted by both refreshes. The sums are exact decimals (kpi_value has 4
-- decimal places), rounded to 4 decimals after the query (exact::round4_column: half away from
-- zero; SQL ROUND would round half to even).
-- The zeros take kpi_value's decimal type where the two selects are stacked (polars' SQL
-- has no DECIMAL type to cast to). Tables: earlier_lines (deliveries before P), later_lines (deliveries P … R-1), each with
-- partner_id, category, month_index, kpi_value; change_months.
SELECT
    s.partner_id,
    s.category,
    SUM(s.entered) AS entered,
    SUM(s.left_window) AS left_window,
    SUM(s.late) AS late
FROM (
    SELECT
        l.partner_id,
        l.category,
        CASE WHEN m.in_previous = 0 THEN l.kpi_value ELSE 0 END AS entered,
        CASE WHEN m.in_refresh = 0 THEN 0 - l.kpi_value ELSE 0 END AS left_window,
        0 AS late
    FROM earlier_lines AS l
    JOIN change_months AS m ON m.month_index = l.month_index
    WHERE m.in_previous = 0 OR m.in_refresh = 0
    UNION ALL
    SELECT
        l.partner_id,
        l.category,
        CASE WHEN m.in_previous = 0 THEN l.kpi_value ELSE 0 END AS entered,
        0 AS left_window,
        CASE WHEN m.in_previous = 1 THEN l.kpi_value ELSE 0 END AS late
    FROM later_lines AS l
    JOIN change_months AS m ON m.month_index = l.month_index
    WHERE m.in_refresh = 1
) AS s
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, s.category
