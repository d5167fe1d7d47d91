{#
  Identity map (DESIGN §2): one row per anonymous_id with the user_key its anonymous
  events belong to: the most recent user_id ever seen on that anonymous_id (by event
  timestamp, then received_at, then event_id), else the anonymous_id itself.
  Rebuilt in full every run (one row per device: small), so late identifications apply
  to earlier anonymous events.
#}
{{ config(materialized='table') }}

with events as (

    select anonymous_id, user_id, event_timestamp, received_at, event_id
    from {{ ref('stg_events') }}

),

anonymous_ids as (

    select
        anonymous_id,
        min(event_timestamp) as first_seen_at,
        max(event_timestamp) as last_seen_at
    from events
    group by anonymous_id

),

identified as (

    select anonymous_id, user_id, event_timestamp as identified_at
    from (
        select
            anonymous_id,
            user_id,
            event_timestamp,
            row_number() over (
                partition by anonymous_id
                order by event_timestamp desc, received_at desc, event_id desc
            ) as recency_rank
        from events
        where user_id is not null
    ) as ranked
    where recency_rank = 1

)

select
    anonymous_ids.anonymous_id,
    coalesce(identified.user_id, anonymous_ids.anonymous_id) as user_key,
    identified.user_id as identified_user_id,
    identified.user_id is not null as is_identified,
    identified.identified_at as last_identified_at,
    anonymous_ids.first_seen_at,
    anonymous_ids.last_seen_at
from anonymous_ids
left join identified
    on anonymous_ids.anonymous_id = identified.anonymous_id
