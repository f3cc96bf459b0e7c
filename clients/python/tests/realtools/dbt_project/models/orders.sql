-- One order has a status the accepted_values test does not know: it warns.
select 10 as order_id, 1 as customer_id, 'placed' as status
union all
select 11 as order_id, 2 as customer_id, 'shipped' as status
union all
select 12 as order_id, 2 as customer_id, 'returned' as status
