-- Monthly KPIs: one row per partner and category with a line in the window, one column per
-- window month (m00 = R-12 … m11 = R-1; 0 where none: the other months' rows add nulls, and an
-- all-null sum is made 0 once per group, faster on decimals than adding zeros row by row) and
-- the total: exact decimal sums,
-- rounded to 4 decimals after the query (exact::round4_columns: half away from zero). Tables:
-- window_sums,
-- categories (category, position: the order of [kpi_categories]).
SELECT
    s.partner_id,
    s.category,
    COALESCE(SUM(CASE WHEN s.position = 0 THEN s.kpi_value END), 0) AS m00,
    COALESCE(SUM(CASE WHEN s.position = 1 THEN s.kpi_value END), 0) AS m01,
    COALESCE(SUM(CASE WHEN s.position = 2 THEN s.kpi_value END), 0) AS m02,
    COALESCE(SUM(CASE WHEN s.position = 3 THEN s.kpi_value END), 0) AS m03,
    COALESCE(SUM(CASE WHEN s.position = 4 THEN s.kpi_value END), 0) AS m04,
    COALESCE(SUM(CASE WHEN s.position = 5 THEN s.kpi_value END), 0) AS m05,
    COALESCE(SUM(CASE WHEN s.position = 6 THEN s.kpi_value END), 0) AS m06,
    COALESCE(SUM(CASE WHEN s.position = 7 THEN s.kpi_value END), 0) AS m07,
    COALESCE(SUM(CASE WHEN s.position = 8 THEN s.kpi_value END), 0) AS m08,
    COALESCE(SUM(CASE WHEN s.position = 9 THEN s.kpi_value END), 0) AS m09,
    COALESCE(SUM(CASE WHEN s.position = 10 THEN s.kpi_value END), 0) AS m10,
    COALESCE(SUM(CASE WHEN s.position = 11 THEN s.kpi_value END), 0) AS m11,
    SUM(s.kpi_value) AS total,
    MIN(c.position) AS category_position
FROM window_sums AS s
JOIN categories AS c ON c.category = s.category
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, category_position
