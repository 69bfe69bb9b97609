-- Monthly KPIs: one row per partner and category with a line in the window, one column per
-- window month (m00 = R-12 … m11 = R-1, 0 where none) and the total: exact decimal sums,
-- rounded to 4 decimals after the query (exact::round4_columns: half away from zero). Tables:
-- window_sums,
-- categories (category, position: the order of [kpi_categories]).
SELECT
    s.partner_id,
    s.category,
    SUM(CASE WHEN s.position = 0 THEN s.kpi_value ELSE 0 END) AS m00,
    SUM(CASE WHEN s.position = 1 THEN s.kpi_value ELSE 0 END) AS m01,
    SUM(CASE WHEN s.position = 2 THEN s.kpi_value ELSE 0 END) AS m02,
    SUM(CASE WHEN s.position = 3 THEN s.kpi_value ELSE 0 END) AS m03,
    SUM(CASE WHEN s.position = 4 THEN s.kpi_value ELSE 0 END) AS m04,
    SUM(CASE WHEN s.position = 5 THEN s.kpi_value ELSE 0 END) AS m05,
    SUM(CASE WHEN s.position = 6 THEN s.kpi_value ELSE 0 END) AS m06,
    SUM(CASE WHEN s.position = 7 THEN s.kpi_value ELSE 0 END) AS m07,
    SUM(CASE WHEN s.position = 8 THEN s.kpi_value ELSE 0 END) AS m08,
    SUM(CASE WHEN s.position = 9 THEN s.kpi_value ELSE 0 END) AS m09,
    SUM(CASE WHEN s.position = 10 THEN s.kpi_value ELSE 0 END) AS m10,
    SUM(CASE WHEN s.position = 11 THEN s.kpi_value ELSE 0 END) AS m11,
    SUM(s.kpi_value) AS total,
    MIN(c.position) AS category_position
FROM window_sums AS s
JOIN categories AS c ON c.category = s.category
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, category_position
