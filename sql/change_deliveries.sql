-- The deliveries read for the split, with whether each arrived after the previous refresh
-- (delivery P or later: 1, else 0). Tables: deliveries (delivery as YYYY-MM, delivery_index),
-- params (previous_index: the month index of P).
SELECT
    d.delivery,
    CASE WHEN d.delivery_index >= p.previous_index THEN 1 ELSE 0 END AS after_previous
FROM deliveries AS d
CROSS JOIN params AS p
