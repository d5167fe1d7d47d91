{# One row per (user_key, UTC date) with non-bot events and the furthest funnel step reached
   that day. Incremental: the changed users from their first changed day on (strategy
   replace_changed_users, README "Incrementality"). #}
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_device_users') }}
{{
  config(
    materialized=nightjar.incremental_materialization(),
    incremental_strategy='replace_changed_users',
    replaced_rows='stored.activity_date >= cast(changed_from as date)',
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
        cast(cast(changed_from as date) as {{ dbt.type_timestamp() }}) as recompute_from
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
