{# De-duplicated events per day, source and event name (bots included: this watches the
   data, not the business). `source` is the landing layout the events came from; the
   native `events/dt=...` layout is the one source so far. #}
with events as (

    select
        event_date,
        event_name,
        is_bot
    from {{ ref('stg_events') }}

)

select
    event_date as metric_date,
    cast('native' as {{ dbt.type_string() }}) as source,
    event_name,
    count(*) as events,
    sum(case when is_bot then 0 else 1 end) as human_events
from events
where event_date is not null
group by event_date, event_name
