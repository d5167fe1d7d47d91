{# Schema drift per UTC event date and source: event names and property keys (per event
   name, `event_name.key`) that appear without having been seen in the previous 28 days
   (new), and ones seen at least `vanish_min_daily` times on each of the previous 7 days
   but missing today (vanished; the floor keeps a rare event's quiet day from counting).
   Dates with less than 28 days of history before them have null counts: everything
   would look new. #}
{%- set new_lookback = 28 -%}
{%- set vanish_streak = 7 -%}
{%- set vanish_min_daily = 20 -%}
with property_keys as (

    -- staging does not keep the properties document: read the keys from the raw layer
    -- (retried copies repeat the same keys; `items` is distinct)
    select
        cast({{ nightjar.to_utc_timestamp(adapter.quote('timestamp')) }} as date) as event_date,
        {{ nightjar.normalize_event_name('event_name') }} as event_name,
        {{ nightjar.json_object_keys_unnested('properties') }} as property_key
    from {{ source('raw', 'events') }}
    where properties is not null

),

items as (

    select
        event_date as metric_date,
        cast('native' as {{ dbt.type_string() }}) as source,
        cast('event_name' as {{ dbt.type_string() }}) as kind,
        event_name as item,
        count(*) as occurrences
    from {{ ref('stg_events') }}
    where event_date is not null
    group by event_date, event_name
    union all
    select
        event_date as metric_date,
        cast('native' as {{ dbt.type_string() }}) as source,
        cast('property_key' as {{ dbt.type_string() }}) as kind,
        {{ dbt.concat(['event_name', "'.'", 'property_key']) }} as item,
        count(*) as occurrences
    from property_keys
    where event_date is not null
    group by event_date, {{ dbt.concat(['event_name', "'.'", 'property_key']) }}

),

days as (

    select metric_date, source, min(metric_date) over (partition by source) as first_date
    from (select distinct metric_date, source from items) as d

),

new_items as (

    select items.metric_date, items.source, items.kind, count(*) as n
    from items
    where not exists (
        select 1 from items as earlier
        where earlier.source = items.source
          and earlier.kind = items.kind
          and earlier.item = items.item
          and earlier.metric_date < items.metric_date
          and earlier.metric_date >= {{ nightjar.add_days(-new_lookback, 'items.metric_date') }}
    )
    group by items.metric_date, items.source, items.kind

),

streaks as (

    -- items seen often on every one of the previous {{ vanish_streak }} days
    select days.metric_date, days.source, items.kind, items.item
    from days
    inner join items
        on items.source = days.source
        and items.metric_date < days.metric_date
        and items.metric_date >= {{ nightjar.add_days(-vanish_streak, 'days.metric_date') }}
    group by days.metric_date, days.source, items.kind, items.item
    having count(*) = {{ vanish_streak }} and min(items.occurrences) >= {{ vanish_min_daily }}

),

vanished_items as (

    select streaks.metric_date, streaks.source, streaks.kind, count(*) as n
    from streaks
    where not exists (
        select 1 from items
        where items.source = streaks.source
          and items.kind = streaks.kind
          and items.item = streaks.item
          and items.metric_date = streaks.metric_date
    )
    group by streaks.metric_date, streaks.source, streaks.kind

),

seen as (

    select
        metric_date,
        source,
        sum(case when kind = 'event_name' then 1 else 0 end) as event_names,
        sum(case when kind = 'property_key' then 1 else 0 end) as property_keys
    from items
    group by metric_date, source

)

select
    days.metric_date,
    days.source,
    seen.event_names,
    seen.property_keys,
    {%- for measure, rel, kind in [('new_event_names', 'new_items', 'event_name'),
                                   ('vanished_event_names', 'vanished_items', 'event_name'),
                                   ('new_property_keys', 'new_items', 'property_key'),
                                   ('vanished_property_keys', 'vanished_items', 'property_key')] %}
    case
        when days.metric_date >= {{ nightjar.add_days(new_lookback, 'days.first_date') }}
            then coalesce((
                select sum(x.n) from {{ rel }} as x
                where x.metric_date = days.metric_date and x.source = days.source and x.kind = '{{ kind }}'
            ), 0)
    end as {{ measure }}{% if not loop.last %},{% endif %}
    {%- endfor %}
from days
inner join seen
    on seen.metric_date = days.metric_date
    and seen.source = days.source
