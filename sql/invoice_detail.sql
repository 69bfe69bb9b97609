-- Invoice detail: every window line of the partners due in the refresh, with what support
-- needs for a KPI discrepancy. Tables: lines, window_months, due (partner_id).
SELECT
    l.partner_id,
    EXTRACT(MONTH FROM l.invoice_date) AS month,
    EXTRACT(YEAR FROM l.invoice_date) AS year,
    l.omlp_type,
    l.purchase_unit,
    l.invoice_number,
    l.invoice_line,
    l.document_type,
    l.kpi_value,
    l.revenue,
    l.currency,
    l.revenue_usd,
    l.category,
    l.delivery,
    l.invoice_date
FROM lines AS l
JOIN due AS d ON d.partner_id = l.partner_id
JOIN window_months AS w ON w.month_index = l.month_index
ORDER BY l.partner_id, l.invoice_date, l.invoice_number, l.invoice_line
