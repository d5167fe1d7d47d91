{# One row per UTC date and channel: sessions that start that day (fct_sessions.channel) and
   the orders of that day credited to the channel by each attribution model (fct_attribution).
   Rebuilt each run from those two tables. #}

with

sessions_daily as (

    select
        session_date as metric_date,
        channel,
        count(*) as sessions,
        sum(case when converted then 1 else 0 end) as converted_sessions
    from {{ ref('fct_sessions') }}
    group by session_date, channel

),

attributed_daily as (

    select
        order_date as metric_date,
        channel,
        {% for model in nightjar.attribution_models() %}
        sum(case when attribution_model = '{{ model }}' then credit else 0 end) as attributed_orders_{{ model }},
        sum(case when attribution_model = '{{ model }}' then credited_revenue_usd else 0 end) as attributed_revenue_usd_{{ model }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from {{ ref('fct_attribution') }}
    group by order_date, channel

),

day_channels as (

    select metric_date, channel from sessions_daily
    union
    select metric_date, channel from attributed_daily

)

select
    cast(day_channels.metric_date as date) as metric_date,
    cast(day_channels.channel as {{ dbt.type_string() }}) as channel,
    cast(coalesce(sessions_daily.sessions, 0) as {{ dbt.type_bigint() }}) as sessions,
    cast(coalesce(sessions_daily.converted_sessions, 0) as {{ dbt.type_bigint() }}) as converted_sessions,
    {% for model in nightjar.attribution_models() %}
    cast(coalesce(attributed_daily.attributed_orders_{{ model }}, 0) as {{ nightjar.type_double() }}) as attributed_orders_{{ model }},
    cast(coalesce(attributed_daily.attributed_revenue_usd_{{ model }}, 0) as {{ nightjar.type_double() }}) as attributed_revenue_usd_{{ model }}{% if not loop.last %},{% endif %}
    {% endfor %}
from day_channels
left join sessions_daily
    on day_channels.metric_date = sessions_daily.metric_date
    and day_channels.channel = sessions_daily.channel
left join attributed_daily
    on day_channels.metric_date = attributed_daily.metric_date
    and day_channels.channel = attributed_daily.channel
