{#
  One row per UTC date from the first to the last date with events or orders (DESIGN §2).
  Rebuilt in full each run (one row per day: small), so a refund or cancellation of an
  old order moves that order's revenue on the day it was created.
    dau / wau / mau: distinct non-bot user_keys active on D, D-6..D, D-29..D
    stickiness = dau / mau; new_users = user_keys whose first event is on D
    sessions, avg_session_duration_seconds, bounce_rate, conversion_rate from fct_sessions
      (by session_date; conversion_rate = converted sessions / sessions)
    orders = orders created on D not cancelled; units = their items' quantity;
    gross_revenue = their total (USD); refunds = total of those now refunded;
    net_revenue = gross - refunds; aov = gross / orders; arpdau = net_revenue / dau
  Ratios are null when their denominator is 0; counts and money are 0.
#}

with activity as (

    select user_key, activity_date from {{ ref('int_user_activity_daily') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

order_items as (

    select * from {{ ref('stg_order_items') }}

),

bounds as (

    select min(d) as first_date, max(d) as last_date
    from (
        select activity_date as d from activity
        union all
        select order_date as d from orders
    ) as all_dates

),

spine as (

    select {{ nightjar.add_days('series.generated_number - 1', 'bounds.first_date') }} as metric_date
    from ({{ dbt.generate_series(var('max_spine_days')) }}) as series
    cross join bounds
    where {{ nightjar.add_days('series.generated_number - 1', 'bounds.first_date') }} <= bounds.last_date

),

first_seen as (

    select user_key, min(activity_date) as first_date
    from activity
    group by user_key

),

daily_active as (

    select activity_date as metric_date, count(distinct user_key) as dau
    from activity
    group by activity_date

),

weekly_active as (

    select spine.metric_date, count(distinct activity.user_key) as wau
    from spine
    inner join activity
        on activity.activity_date <= spine.metric_date
        and activity.activity_date >= {{ nightjar.add_days(-6, 'spine.metric_date') }}
    group by spine.metric_date

),

monthly_active as (

    select spine.metric_date, count(distinct activity.user_key) as mau
    from spine
    inner join activity
        on activity.activity_date <= spine.metric_date
        and activity.activity_date >= {{ nightjar.add_days(-29, 'spine.metric_date') }}
    group by spine.metric_date

),

new_users as (

    select first_date as metric_date, count(*) as new_users
    from first_seen
    group by first_date

),

daily_sessions as (

    select
        session_date as metric_date,
        count(*) as sessions,
        avg(cast(duration_seconds as {{ nightjar.type_double() }})) as avg_session_duration_seconds,
        sum(case when is_bounce then 1 else 0 end) as bounces,
        sum(case when converted then 1 else 0 end) as converted_sessions
    from sessions
    group by session_date

),

order_units as (

    select order_id, sum(quantity) as units
    from order_items
    group by order_id

),

daily_orders as (

    select
        orders.order_date as metric_date,
        count(*) as orders,
        sum(coalesce(order_units.units, 0)) as units,
        sum(orders.total_amount_usd) as gross_revenue,
        sum(case when orders.is_refunded then orders.total_amount_usd else 0 end) as refunds
    from orders
    left join order_units
        on orders.order_id = order_units.order_id
    where not orders.is_cancelled
    group by orders.order_date

),

joined as (

    select
        spine.metric_date,
        coalesce(daily_active.dau, 0) as dau,
        coalesce(weekly_active.wau, 0) as wau,
        coalesce(monthly_active.mau, 0) as mau,
        coalesce(new_users.new_users, 0) as new_users,
        coalesce(daily_sessions.sessions, 0) as sessions,
        daily_sessions.avg_session_duration_seconds,
        coalesce(daily_sessions.bounces, 0) as bounces,
        coalesce(daily_sessions.converted_sessions, 0) as converted_sessions,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.units, 0) as units,
        coalesce(daily_orders.gross_revenue, 0) as gross_revenue,
        coalesce(daily_orders.refunds, 0) as refunds
    from spine
    left join daily_active on spine.metric_date = daily_active.metric_date
    left join weekly_active on spine.metric_date = weekly_active.metric_date
    left join monthly_active on spine.metric_date = monthly_active.metric_date
    left join new_users on spine.metric_date = new_users.metric_date
    left join daily_sessions on spine.metric_date = daily_sessions.metric_date
    left join daily_orders on spine.metric_date = daily_orders.metric_date

)

select
    cast(metric_date as date) as metric_date,
    cast(dau as {{ dbt.type_bigint() }}) as dau,
    cast(wau as {{ dbt.type_bigint() }}) as wau,
    cast(mau as {{ dbt.type_bigint() }}) as mau,
    cast({{ nightjar.safe_divide('dau', 'mau') }} as {{ nightjar.type_double() }}) as stickiness,
    cast(new_users as {{ dbt.type_bigint() }}) as new_users,
    cast(sessions as {{ dbt.type_bigint() }}) as sessions,
    cast(avg_session_duration_seconds as {{ nightjar.type_double() }}) as avg_session_duration_seconds,
    cast({{ nightjar.safe_divide('bounces', 'sessions') }} as {{ nightjar.type_double() }}) as bounce_rate,
    cast({{ nightjar.safe_divide('converted_sessions', 'sessions') }} as {{ nightjar.type_double() }}) as conversion_rate,
    cast(orders as {{ dbt.type_bigint() }}) as orders,
    cast(units as {{ dbt.type_bigint() }}) as units,
    cast(gross_revenue as {{ nightjar.type_double() }}) as gross_revenue,
    cast(refunds as {{ nightjar.type_double() }}) as refunds,
    cast(gross_revenue - refunds as {{ nightjar.type_double() }}) as net_revenue,
    cast({{ nightjar.safe_divide('gross_revenue', 'orders') }} as {{ nightjar.type_double() }}) as aov,
    cast({{ nightjar.safe_divide('gross_revenue - refunds', 'dau') }} as {{ nightjar.type_double() }}) as arpdau
from joined
