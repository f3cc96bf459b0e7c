-- Two customers, one without an email: not_null(email) fails on 1 row.
select 1 as customer_id, 'ada@example.com' as email
union all
select 2 as customer_id, null as email
