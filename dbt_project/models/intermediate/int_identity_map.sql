{# One row per anonymous_id with the user_key its anonymous events belong to (DESIGN §2).
   Incremental: a touched device is updated from its stored row when it can be (`updated`),
   else recomputed from all its events (README "Identity map"). #}
{#- An event's time if it is a non-bot event without a user_id (else null). -#}
{%- set anonymous_event_at -%}
    case when user_id is null and not is_bot then event_timestamp end
{%- endset -%}
{{
  config(
    materialized=nightjar.incremental_materialization(),
    unique_key='anonymous_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
  )
}}

with

{% if is_incremental() %}
new_events as (

    select anonymous_id, user_id, event_timestamp, {{ anonymous_event_at }} as anonymous_event_at, _last_loaded_at
    from {{ ref('stg_events') }}
    where {{ nightjar.new_events_condition('_max_loaded_at') }}

),

stored as (

    select *
    from {{ this }}
    where anonymous_id in (select anonymous_id from new_events)

),

needs_history as (

    -- the anonymous_ids whose identity cannot be updated from the stored row alone
    select distinct new_events.anonymous_id
    from new_events
    left join stored
        on new_events.anonymous_id = stored.anonymous_id
    where stored.anonymous_id is null
       or (
           new_events.user_id is not null
           and (
               stored.identified_user_id is null
               or new_events.user_id <> stored.identified_user_id
               or new_events.event_timestamp <= stored.last_identified_at
           )
       )
    {% if nightjar.is_backfill() %}
       -- a backfill recomputes the devices with events in the window from all their events
       or {{ nightjar.in_backfill_window('new_events.event_timestamp') }}
    {% endif %}

),

updated as (

    select
        stored.anonymous_id,
        stored.user_key,
        stored.identified_user_id,
        stored.is_identified,
        case
            when max(case when new_events.user_id is not null then new_events.event_timestamp end) is not null
                then max(case when new_events.user_id is not null then new_events.event_timestamp end)
            else stored.last_identified_at
        end as last_identified_at,
        case when min(new_events.event_timestamp) < stored.first_seen_at
            then min(new_events.event_timestamp) else stored.first_seen_at end as first_seen_at,
        case when max(new_events.event_timestamp) > stored.last_seen_at
            then max(new_events.event_timestamp) else stored.last_seen_at end as last_seen_at,
        case when max(new_events._last_loaded_at) > stored._max_loaded_at
            then max(new_events._last_loaded_at) else stored._max_loaded_at end as _max_loaded_at,
        stored._mapped_loaded_at,
        case
            when stored.first_anonymous_at is null
                or min(new_events.anonymous_event_at) < stored.first_anonymous_at
                then min(new_events.anonymous_event_at)
            else stored.first_anonymous_at
        end as first_anonymous_at
    from stored
    inner join new_events
        on stored.anonymous_id = new_events.anonymous_id
    where stored.anonymous_id not in (select anonymous_id from needs_history)
    group by
        stored.anonymous_id, stored.user_key, stored.identified_user_id, stored.is_identified,
        stored.last_identified_at, stored.first_seen_at, stored.last_seen_at,
        stored._max_loaded_at, stored._mapped_loaded_at, stored.first_anonymous_at

),
{% endif %}

events as (

    select anonymous_id, user_id, event_timestamp, received_at, event_id,
        {{ anonymous_event_at }} as anonymous_event_at, _last_loaded_at
    from {{ ref('stg_events') }}
    {% if is_incremental() %}
    where anonymous_id in (select anonymous_id from needs_history)
    {% endif %}

),

anonymous_ids as (

    select
        anonymous_id,
        min(event_timestamp) as first_seen_at,
        max(event_timestamp) as last_seen_at,
        max(_last_loaded_at) as _max_loaded_at,
        min(anonymous_event_at) as first_anonymous_at
    from events
    group by anonymous_id

),

identifications as (

    select
        anonymous_id,
        user_id,
        event_timestamp,
        _last_loaded_at,
        row_number() over (
            partition by anonymous_id
            order by event_timestamp desc, received_at desc, event_id desc
        ) as recency_rank
    from events
    where user_id is not null

),

identified as (

    select anonymous_id, user_id, event_timestamp as identified_at
    from identifications
    where recency_rank = 1

),

owner_runs as (

    -- the current owner's latest run ends (going back in time) at the newest
    -- identification by another user_id, else at the oldest identification
    select
        identifications.anonymous_id,
        min(case when identifications.user_id <> identified.user_id then identifications.recency_rank end) - 1 as run_end_rank,
        max(identifications.recency_rank) as oldest_rank
    from identifications
    inner join identified
        on identifications.anonymous_id = identified.anonymous_id
    group by identifications.anonymous_id

),

run_starts as (

    select identifications.anonymous_id, identifications._last_loaded_at as _mapped_loaded_at
    from identifications
    inner join owner_runs
        on identifications.anonymous_id = owner_runs.anonymous_id
    where identifications.recency_rank = coalesce(owner_runs.run_end_rank, owner_runs.oldest_rank)

),

recomputed as (

    select
        anonymous_ids.anonymous_id,
        coalesce(identified.user_id, anonymous_ids.anonymous_id) as user_key,
        identified.user_id as identified_user_id,
        identified.user_id is not null as is_identified,
        identified.identified_at as last_identified_at,
        anonymous_ids.first_seen_at,
        anonymous_ids.last_seen_at,
        anonymous_ids._max_loaded_at,
        run_starts._mapped_loaded_at,
        anonymous_ids.first_anonymous_at
    from anonymous_ids
    left join identified
        on anonymous_ids.anonymous_id = identified.anonymous_id
    left join run_starts
        on anonymous_ids.anonymous_id = run_starts.anonymous_id

)

select * from recomputed
{% if is_incremental() %}
union all
select
    anonymous_id, user_key, identified_user_id, is_identified, last_identified_at,
    first_seen_at, last_seen_at, _max_loaded_at, _mapped_loaded_at, first_anonymous_at
from updated
{% endif %}
