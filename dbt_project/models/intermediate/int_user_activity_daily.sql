{#
  One row per (user_key, UTC date) with at least one non-bot event: the basis of
  active users, new users, retention and the daily funnel (DESIGN §2).
  funnel_step = the furthest purchase-funnel step reached that day: 1 page_viewed,
  2 product_viewed, 3 product_added_to_cart, 4 checkout_started, 5 purchase_completed,
  0 none of these (fct_funnel_daily counts a user at every step up to it).

  Incremental (macros/replace_changed_users.sql): a nightly run recomputes only the
  user_keys whose events or stitching changed since this table's watermark
  (`_max_loaded_at`), and for each of them only the days from its first change on
  (`changed_from`, macros/touched_keys.sql: new, late and re-delivered events, devices that
  changed hands, backfill windows); the strategy replaces those days of the user
  (`replaced_rows`) with this run's rows, its earlier days stay. The post-hook deletes the
  rows of anonymous_ids that are now identified (their events moved to the user).
  Equal to a full refresh.
#}
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_device_users') }}
{{
  config(
    materialized='incremental',
    incremental_strategy='replace_changed_users',
    replaced_rows='stored.activity_date >= ' ~ nightjar.to_date('changed_from'),
    on_schema_change='append_new_columns',
    post_hook=["{{ nightjar.delete_identified_anonymous_keys() }}"]
  )
}}

with

{% if is_incremental() %}
change_points as (

    {{ nightjar.user_change_points('_max_loaded_at') }}

),

recompute_points as (

    -- a user's days before its first change are unchanged: recompute from that day on
    -- (the strategy replaces the stored rows from that day on: `replaced_rows` above)
    select
        user_key,
        cast({{ nightjar.to_date('changed_from') }} as {{ dbt.type_timestamp() }}) as recompute_from
    from change_points

),

events as (

    {{ nightjar.events_of_user_keys('recompute_points', from_column='recompute_from') }}

),
{% else %}
events as (

    select * from {{ ref('int_events_stitched') }}

),
{% endif %}

non_bot_events as (

    select
        user_key,
        event_date,
        event_timestamp,
        case event_name
            when 'page_viewed' then 1
            when 'product_viewed' then 2
            when 'product_added_to_cart' then 3
            when 'checkout_started' then 4
            when 'purchase_completed' then 5
            else 0
        end as funnel_step,
        _last_loaded_at
    from events
    where not is_bot

),

daily as (

    select
        user_key,
        event_date as activity_date,
        count(*) as events,
        min(event_timestamp) as first_event_at,
        max(funnel_step) as funnel_step,
        max(_last_loaded_at) as _max_loaded_at
    from non_bot_events
    group by user_key, event_date

)

select user_key, activity_date, events, first_event_at, funnel_step, _max_loaded_at
from daily
