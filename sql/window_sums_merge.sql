-- Window sums of the whole ledger from the window sums of each delivery (window_sums.sql run
-- on one partition's lines at a time, so that only one delivery's lines are in memory).
-- Table: partition_sums (the per-delivery sums, deliveries in order).
SELECT
    s.partner_id,
    s.category,
    s.position,
    SUM(s.kpi_value) AS kpi_value,
    SUM(s.revenue_usd) AS revenue_usd,
    SUM(s.lines) AS lines
FROM partition_sums AS s
GROUP BY s.partner_id, s.category, s.position
