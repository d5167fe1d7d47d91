{# One row per UTC date from the first to the last date with events or orders (DESIGN §2),
   rebuilt each run so that refunds of old orders land on their order's day; columns in the .yml. #}

{#- dau, new_users and the wau/mau island starts and ends all come from one sort of
    int_user_activity_daily (README "Daily metrics"), read only here: DuckDB materialises a
    CTE with several consumers. #}
with activity as (

    select
        activity_date,
        lag(activity_date) over (partition by user_key order by activity_date) as previous_date,
        lead(activity_date) over (partition by user_key order by activity_date) as next_date
    from {{ ref('int_user_activity_daily') }}

),

activity_by_date as (

    select
        activity_date,
        sum(case when previous_date is null or previous_date < activity_date then 1 else 0 end) as dau,
        sum(case when previous_date is null then 1 else 0 end) as new_users,
        {%- for window_name, window_days in [('wau', 7), ('mau', 30)] %}
        sum(case
                when previous_date is null then 1
                when activity_date > {{ nightjar.add_days(window_days, 'previous_date') }} then 1
                else 0
            end) as {{ window_name }}_island_starts,
        sum(case
                when next_date is null then 1
                when next_date > {{ nightjar.add_days(window_days, 'activity_date') }} then 1
                else 0
            end) as {{ window_name }}_island_ends{{ ',' if not loop.last }}
        {%- endfor %}
    from activity
    group by activity_date

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
        select activity_date as d from activity_by_date
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

{% for window_name, window_days in [('wau', 7), ('mau', 30)] %}
{{ window_name }}_deltas as (

    select delta_date as metric_date, sum(delta) as delta
    from (
        select activity_date as delta_date, {{ window_name }}_island_starts as delta
        from activity_by_date
        union all
        select
            {{ nightjar.add_days(window_days, 'activity_date') }} as delta_date,
            0 - {{ window_name }}_island_ends as delta
        from activity_by_date
    ) as changes
    group by delta_date

),

{{ window_name }}_active as (

    select
        spine.metric_date,
        sum(coalesce({{ window_name }}_deltas.delta, 0)) over (
            order by spine.metric_date
            rows between unbounded preceding and current row
        ) as {{ window_name }}
    from spine
    left join {{ window_name }}_deltas
        on spine.metric_date = {{ window_name }}_deltas.metric_date

),

{% endfor %}
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
        coalesce(activity_by_date.dau, 0) as dau,
        coalesce(wau_active.wau, 0) as wau,
        coalesce(mau_active.mau, 0) as mau,
        coalesce(activity_by_date.new_users, 0) as new_users,
        coalesce(daily_sessions.sessions, 0) as sessions,
        daily_sessions.avg_session_duration_seconds,
        coalesce(daily_sessions.bounces, 0) as bounces,
        coalesce(daily_sessions.converted_sessions, 0) as converted_sessions,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.units, 0) as units,
        coalesce(daily_orders.gross_revenue, 0) as gross_revenue,
        coalesce(daily_orders.refunds, 0) as refunds
    from spine
    left join activity_by_date on spine.metric_date = activity_by_date.activity_date
    left join wau_active on spine.metric_date = wau_active.metric_date
    left join mau_active on spine.metric_date = mau_active.metric_date
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
