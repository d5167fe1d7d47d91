{# Shares of raw copies that were duplicates and of events that were bots, per UTC event
   date and source, plus a `source = 'all'` row per date (sums over sources, so a rule
   that filters on it sees correct shares however many sources there are). #}
with per_source as (

    select
        event_date as metric_date,
        cast('native' as {{ dbt.type_string() }}) as source,
        sum(copies) as raw_rows,
        count(*) as events,
        sum(copies - 1) as duplicate_rows,
        sum(case when is_bot then 1 else 0 end) as bot_events
    from {{ ref('stg_events') }}
    where event_date is not null
    group by event_date

),

with_total as (

    select * from per_source
    union all
    select
        metric_date,
        cast('all' as {{ dbt.type_string() }}) as source,
        sum(raw_rows),
        sum(events),
        sum(duplicate_rows),
        sum(bot_events)
    from per_source
    group by metric_date

)

select
    metric_date,
    source,
    raw_rows,
    events,
    duplicate_rows,
    {{ nightjar.safe_divide('duplicate_rows', 'raw_rows') }} as duplicate_share,
    bot_events,
    {{ nightjar.safe_divide('bot_events', 'events') }} as bot_share
from with_total
