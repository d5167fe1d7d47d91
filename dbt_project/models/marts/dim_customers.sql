{# One row per shop customer: orders (not cancelled, USD), RFM scores and segment, acquisition
   channel; definitions in README "Decisions" and dim_customers.yml. #}

with customers as (

    select * from {{ ref('stg_customers') }}

),

orders as (

    select * from {{ ref('stg_orders') }} where not is_cancelled

),

sessions as (

    select customer_id, session_id, session_start, utm_source, referrer
    from {{ ref('fct_sessions') }}
    where customer_id is not null

),

as_of as (

    select max(d) as as_of_date
    from (
        select activity_date as d from {{ ref('int_user_activity_daily') }}
        union all
        select order_date as d from {{ ref('stg_orders') }}
    ) as all_dates

),

customer_orders as (

    select
        customer_id,
        min(created_at) as first_order_at,
        max(created_at) as last_order_at,
        count(*) as orders_count,
        sum(total_amount_usd) as gross_revenue_usd,
        sum(total_amount_usd) - sum(case when is_refunded then total_amount_usd else 0 end) as net_revenue_usd
    from orders
    group by customer_id

),

{#- Each customer's first session (earliest start, then lowest session_id) by two aggregations
    and a join: a row_number() over every session costs ~60% of this model at scale M.
    session_start is never null (a constraint of fct_sessions), so the earliest always matches. #}
first_session_starts as (

    select customer_id, min(session_start) as session_start
    from sessions
    group by customer_id

),

first_session_ids as (

    select sessions.customer_id, min(sessions.session_id) as session_id
    from sessions
    inner join first_session_starts
        on sessions.customer_id = first_session_starts.customer_id
        and sessions.session_start = first_session_starts.session_start
    group by sessions.customer_id

),

first_sessions as (

    select sessions.customer_id, sessions.utm_source, sessions.referrer
    from sessions
    inner join first_session_ids
        on sessions.customer_id = first_session_ids.customer_id
        and sessions.session_id = first_session_ids.session_id

),

scored as (

    select
        customer_orders.*,
        {{ dbt.datediff('cast(customer_orders.last_order_at as date)', 'as_of.as_of_date', 'day') }} as recency_days,
        ntile(5) over (order by customer_orders.last_order_at, customer_orders.customer_id) as r_score,
        ntile(5) over (order by customer_orders.orders_count, customer_orders.customer_id) as f_score,
        ntile(5) over (order by customer_orders.net_revenue_usd, customer_orders.customer_id) as m_score
    from customer_orders
    cross join as_of

),

final as (

    select
        customers.customer_id,
        customers.email_hash,
        customers.country,
        customers.created_at,
        scored.first_order_at,
        scored.last_order_at,
        coalesce(scored.orders_count, 0) as orders_count,
        coalesce(scored.gross_revenue_usd, 0) as gross_revenue_usd,
        coalesce(scored.net_revenue_usd, 0) as net_revenue_usd,
        scored.recency_days,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        case
            when scored.customer_id is null then 'Prospect'
            when scored.r_score >= 4 and scored.f_score >= 4 and scored.m_score >= 4 then 'Champions'
            when scored.r_score >= 3 and scored.f_score >= 4 then 'Loyal'
            when scored.r_score >= 4 and scored.f_score = 1 then 'New'
            when scored.r_score >= 3 and scored.f_score >= 2 then 'Potential Loyalist'
            when scored.r_score <= 2 and scored.f_score >= 3 then 'At Risk'
            when scored.r_score = 2 then 'Hibernating'
            when scored.r_score = 1 then 'Lost'
            else 'Needs Attention'
        end as rfm_segment,
        case
            when first_sessions.customer_id is null then 'unknown'
            when first_sessions.utm_source is not null and trim(first_sessions.utm_source) <> '' then lower(trim(first_sessions.utm_source))
            when first_sessions.referrer is not null and trim(first_sessions.referrer) <> '' then 'referral'
            else 'direct'
        end as acquisition_channel,
        as_of.as_of_date
    from customers
    cross join as_of
    left join scored
        on customers.customer_id = scored.customer_id
    left join first_sessions
        on customers.customer_id = first_sessions.customer_id

)

select
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(email_hash as {{ dbt.type_string() }}) as email_hash,
    cast(country as {{ dbt.type_string() }}) as country,
    cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast(first_order_at as {{ dbt.type_timestamp() }}) as first_order_at,
    cast(last_order_at as {{ dbt.type_timestamp() }}) as last_order_at,
    cast(orders_count as {{ dbt.type_bigint() }}) as orders_count,
    cast(gross_revenue_usd as {{ nightjar.type_double() }}) as gross_revenue_usd,
    cast(net_revenue_usd as {{ nightjar.type_double() }}) as net_revenue_usd,
    cast(recency_days as {{ dbt.type_bigint() }}) as recency_days,
    cast(r_score as {{ dbt.type_bigint() }}) as r_score,
    cast(f_score as {{ dbt.type_bigint() }}) as f_score,
    cast(m_score as {{ dbt.type_bigint() }}) as m_score,
    cast(rfm_segment as {{ dbt.type_string() }}) as rfm_segment,
    cast(acquisition_channel as {{ dbt.type_string() }}) as acquisition_channel,
    cast(as_of_date as date) as as_of_date
from final
