-- Monthly KPIs of the refresh window: one row per partner and category with a line in the
-- window, one column per window month (m00 = R-12 ... m11 = R-1, 0 where none) and the total.
-- Tables: lines, params (window_from, window_to), categories (category, position: the order
-- of [kpi_categories]).
SELECT
    l.partner_id,
    l.category,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 0 THEN l.kpi_value ELSE 0 END), 4) AS m00,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 1 THEN l.kpi_value ELSE 0 END), 4) AS m01,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 2 THEN l.kpi_value ELSE 0 END), 4) AS m02,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 3 THEN l.kpi_value ELSE 0 END), 4) AS m03,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 4 THEN l.kpi_value ELSE 0 END), 4) AS m04,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 5 THEN l.kpi_value ELSE 0 END), 4) AS m05,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 6 THEN l.kpi_value ELSE 0 END), 4) AS m06,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 7 THEN l.kpi_value ELSE 0 END), 4) AS m07,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 8 THEN l.kpi_value ELSE 0 END), 4) AS m08,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 9 THEN l.kpi_value ELSE 0 END), 4) AS m09,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 10 THEN l.kpi_value ELSE 0 END), 4) AS m10,
    ROUND(SUM(CASE WHEN l.month_index - p.window_from = 11 THEN l.kpi_value ELSE 0 END), 4) AS m11,
    ROUND(SUM(l.kpi_value), 4) AS total,
    MIN(c.position) AS position
FROM lines AS l
CROSS JOIN params AS p
JOIN categories AS c ON c.category = l.category
WHERE l.month_index >= p.window_from
  AND l.month_index <= p.window_to
GROUP BY l.partner_id, l.category
ORDER BY l.partner_id, position
