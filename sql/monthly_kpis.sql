-- Monthly KPIs: one row per partner and category with a line in the window, one column per
-- window month (m00 = R-12 … m11 = R-1, 0 where none) and the total. Tables: window_sums,
-- categories (category, position: the order of [kpi_categories]).
SELECT
    s.partner_id,
    s.category,
    ROUND(SUM(CASE WHEN s.position = 0 THEN s.kpi_value ELSE 0 END), 4) AS m00,
    ROUND(SUM(CASE WHEN s.position = 1 THEN s.kpi_value ELSE 0 END), 4) AS m01,
    ROUND(SUM(CASE WHEN s.position = 2 THEN s.kpi_value ELSE 0 END), 4) AS m02,
    ROUND(SUM(CASE WHEN s.position = 3 THEN s.kpi_value ELSE 0 END), 4) AS m03,
    ROUND(SUM(CASE WHEN s.position = 4 THEN s.kpi_value ELSE 0 END), 4) AS m04,
    ROUND(SUM(CASE WHEN s.position = 5 THEN s.kpi_value ELSE 0 END), 4) AS m05,
    ROUND(SUM(CASE WHEN s.position = 6 THEN s.kpi_value ELSE 0 END), 4) AS m06,
    ROUND(SUM(CASE WHEN s.position = 7 THEN s.kpi_value ELSE 0 END), 4) AS m07,
    ROUND(SUM(CASE WHEN s.position = 8 THEN s.kpi_value ELSE 0 END), 4) AS m08,
    ROUND(SUM(CASE WHEN s.position = 9 THEN s.kpi_value ELSE 0 END), 4) AS m09,
    ROUND(SUM(CASE WHEN s.position = 10 THEN s.kpi_value ELSE 0 END), 4) AS m10,
    ROUND(SUM(CASE WHEN s.position = 11 THEN s.kpi_value ELSE 0 END), 4) AS m11,
    ROUND(SUM(s.kpi_value), 4) AS total,
    MIN(c.position) AS category_position
FROM window_sums AS s
JOIN categories AS c ON c.category = s.category
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, category_position
