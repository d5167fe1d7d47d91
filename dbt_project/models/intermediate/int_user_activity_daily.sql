{#
  One row per (user_key, UTC date) with at least one non-bot event: the basis of
  active users, new users and retention (DESIGN §2).
#}
{{ config(materialized='table') }}

select
    user_key,
    event_date as activity_date,
    count(*) as events,
    min(event_timestamp) as first_event_at
from {{ ref('int_events_stitched') }}
where not is_bot
group by user_key, event_date
