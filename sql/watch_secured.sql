-- Anniversary watch: what each watched partner has secured per KPI category, that is the sum
-- of its window lines dated in its decision window A-12 … A-1. Within the refresh window
-- (position 0 = R-12 … 11 = R-1) those are the positions from months_to_anniversary on,
-- since A-12 = R-12 + months_to_anniversary. An exact decimal sum, rounded to 4 decimals like
-- the KPIs after the query (exact::round4_column: half away from zero; SQL ROUND would round
-- half to even).
-- Tables: window_sums, watched (partner_id, months_to_anniversary).
SELECT
    s.partner_id,
    s.category,
    SUM(CASE WHEN s.position >= w.months_to_anniversary THEN s.kpi_value ELSE 0 END) AS secured
FROM window_sums AS s
JOIN watched AS w ON w.partner_id = s.partner_id
GROUP BY s.partner_id, s.category
ORDER BY s.partner_id, s.category
