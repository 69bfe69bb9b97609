-- Window sums per partner, KPI category and window month, from the month sums of every
-- delivery that can hold a window line (month_sums.sql). A (partner, category, month) has at
-- most one sum per delivery, so each window sum adds the deliveries' sums: exact decimals
-- (kpi_value at 4 places, revenue_usd at 16), the same in any order.
-- Tables: month_sums (the deliveries' month sums, deliveries in order), window_months
-- (month_index, position).
SELECT
    s.partner_id,
    s.category,
    w.position,
    SUM(s.kpi_value) AS kpi_value,
    SUM(s.revenue_usd) AS revenue_usd,
    SUM(s.lines) AS lines
FROM month_sums AS s
JOIN window_months AS w ON w.month_index = s.month_index
GROUP BY s.partner_id, s.category, w.position
