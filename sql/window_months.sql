-- The 12 months of the refresh window, oldest first (position 0 = R-12 … 11 = R-1), built
-- from the one-row params table (window_from as a month index) and the constant offsets 0..11.
SELECT
    p.window_from + o.month_offset AS month_index,
    o.month_offset AS position
FROM params AS p
CROSS JOIN month_offsets AS o
ORDER BY position
