-- The months of the previous refresh's window and of this refresh's window, each once, with
-- whether it lies in either (1 or 0). Tables: params (previous_from, refresh_from: the first
-- window month of P and of R as month indexes), month_offsets (0..11).
SELECT
    u.month_index,
    MAX(u.in_previous) AS in_previous,
    MAX(u.in_refresh) AS in_refresh
FROM (
    SELECT p.previous_from + o.month_offset AS month_index, 1 AS in_previous, 0 AS in_refresh
    FROM params AS p
    CROSS JOIN month_offsets AS o
    UNION ALL
    SELECT p.refresh_from + o.month_offset AS month_index, 0 AS in_previous, 1 AS in_refresh
    FROM params AS p
    CROSS JOIN month_offsets AS o
) AS u
GROUP BY u.month_index
ORDER BY u.month_index
