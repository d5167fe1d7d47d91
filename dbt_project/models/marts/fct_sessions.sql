{#
  fct_sessions (DESIGN §2): non-bot, de-duplicated events of one user_key ordered by
  timestamp (ties by event_id); a new session starts when the gap to the previous event
  is greater than `session_timeout_minutes` (30). Not split at midnight; belongs to the
  UTC date it starts.

  Incremental (delete+insert on user_key): a nightly run re-sessionises, over their whole
  history, only the user_keys touched since the last run:
    * every anonymous_id with a stg_events row newer than the watermark
      (`_max_loaded_at` = newest `_last_loaded_at` of the events already sessionised),
      which covers new days, late events and retried duplicates;
    * the user_key those anonymous_ids map to now, every user_id ever seen on them, and
      the anonymous_ids themselves (their possible previous user_keys), which covers
      re-stitching when an anonymous_id is identified or changes hands.
  A backfill (vars backfill_start/backfill_end, macros/backfill.sql) also treats every
  stg_events row whose event_timestamp is in the window as new, so the users with events
  in the window are re-sessionised over their whole history (= a full refresh for them).
  A user_key that disappears (an anonymous_id that got identified) has no rows in the new
  batch, so the post-hook deletes its stale sessions. Re-sessionising a user over the
  whole history makes the result identical to a full refresh.
#}
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_map') }}
{{
  config(
    materialized='incremental',
    unique_key='user_key',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=[
      "delete from {{ this }} where user_key in (select anonymous_id from {{ ref('int_identity_map') }} where is_identified)"
    ]
  )
}}

with stitched as (

    select * from {{ ref('int_events_stitched') }}

),

{% if is_incremental() %}
new_events as (

    select anonymous_id, user_id
    from {{ ref('stg_events') }}
    where _last_loaded_at > (
        select coalesce(max(_max_loaded_at), cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}))
        from {{ this }}
    )
    {% if nightjar.is_backfill() %}
       -- backfill: also the users with events in the window (macros/backfill.sql)
       or {{ nightjar.in_backfill_window('event_timestamp') }}
    {% endif %}

),

touched_anonymous_ids as (

    select distinct anonymous_id from new_events

),

touched_user_keys as (

    select user_key
    from stitched
    where anonymous_id in (select anonymous_id from touched_anonymous_ids)

    union

    select user_id as user_key
    from {{ ref('stg_events') }}
    where user_id is not null
      and anonymous_id in (select anonymous_id from touched_anonymous_ids)

    union

    select anonymous_id as user_key
    from touched_anonymous_ids

),
{% endif %}

events as (

    select *
    from stitched
    where not is_bot
    {% if is_incremental() %}
      and user_key in (select user_key from touched_user_keys)
    {% endif %}

),

with_previous as (

    select
        events.*,
        lag(event_timestamp) over (
            partition by user_key
            order by event_timestamp, event_id
        ) as previous_event_timestamp
    from events

),

flagged as (

    select
        with_previous.*,
        case
            when previous_event_timestamp is null then 1
            when event_timestamp > {{ dbt.dateadd('minute', var('session_timeout_minutes'), 'previous_event_timestamp') }} then 1
            else 0
        end as is_session_start
    from with_previous

),

numbered as (

    select
        flagged.*,
        sum(is_session_start) over (
            partition by user_key
            order by event_timestamp, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from flagged

),

aggregated as (

    select
        user_key,
        session_number,
        min(event_timestamp) as session_start,
        max(event_timestamp) as session_end,
        count(*) as events,
        sum(case when event_name = 'page_viewed' then 1 else 0 end) as page_views,
        sum(case when event_name = 'product_viewed' then 1 else 0 end) as product_views,
        sum(case when event_name = 'product_added_to_cart' then 1 else 0 end) as cart_adds,
        sum(case when event_name = 'checkout_started' then 1 else 0 end) as checkouts,
        sum(case when event_name = 'purchase_completed' then 1 else 0 end) as purchases,
        max(case when is_identified_user then user_key end) as customer_id,
        max(_last_loaded_at) as _max_loaded_at
    from numbered
    group by user_key, session_number

),

first_events as (

    select
        user_key,
        session_number,
        page_path as landing_page,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        device_type,
        country
    from numbered
    where is_session_start = 1

),

final as (

    select
        {{ dbt.hash(dbt.concat(["aggregated.user_key", "'|'", "cast(aggregated.session_start as " ~ dbt.type_string() ~ ")"])) }} as session_id,
        aggregated.user_key,
        aggregated.customer_id,
        {{ nightjar.to_date('aggregated.session_start') }} as session_date,
        aggregated.session_start,
        aggregated.session_end,
        {{ nightjar.seconds_between('aggregated.session_start', 'aggregated.session_end') }} as duration_seconds,
        aggregated.events,
        aggregated.page_views,
        aggregated.product_views,
        aggregated.cart_adds,
        aggregated.checkouts,
        aggregated.purchases,
        (
            {{ nightjar.epoch_seconds('aggregated.session_end') }} - {{ nightjar.epoch_seconds('aggregated.session_start') }} >= {{ var('engaged_min_seconds') }}
            or aggregated.page_views >= 2
            or aggregated.purchases > 0
        ) as is_engaged,
        aggregated.purchases > 0 as converted,
        first_events.landing_page,
        first_events.referrer,
        first_events.utm_source,
        first_events.utm_medium,
        first_events.utm_campaign,
        first_events.device_type,
        first_events.country,
        aggregated.session_number,
        aggregated._max_loaded_at
    from aggregated
    inner join first_events
        on aggregated.user_key = first_events.user_key
        and aggregated.session_number = first_events.session_number

)

select
    cast(session_id as {{ dbt.type_string() }}) as session_id,
    cast(user_key as {{ dbt.type_string() }}) as user_key,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(session_date as date) as session_date,
    cast(session_start as {{ dbt.type_timestamp() }}) as session_start,
    cast(session_end as {{ dbt.type_timestamp() }}) as session_end,
    cast(duration_seconds as {{ dbt.type_bigint() }}) as duration_seconds,
    cast(events as {{ dbt.type_bigint() }}) as events,
    cast(page_views as {{ dbt.type_bigint() }}) as page_views,
    cast(product_views as {{ dbt.type_bigint() }}) as product_views,
    cast(cart_adds as {{ dbt.type_bigint() }}) as cart_adds,
    cast(checkouts as {{ dbt.type_bigint() }}) as checkouts,
    cast(purchases as {{ dbt.type_bigint() }}) as purchases,
    is_engaged,
    not is_engaged as is_bounce,
    converted,
    cast(landing_page as {{ dbt.type_string() }}) as landing_page,
    cast(referrer as {{ dbt.type_string() }}) as referrer,
    cast(utm_source as {{ dbt.type_string() }}) as utm_source,
    cast(utm_medium as {{ dbt.type_string() }}) as utm_medium,
    cast(utm_campaign as {{ dbt.type_string() }}) as utm_campaign,
    cast(device_type as {{ dbt.type_string() }}) as device_type,
    cast(country as {{ dbt.type_string() }}) as country,
    cast(session_number as {{ dbt.type_bigint() }}) as session_number,
    cast(_max_loaded_at as {{ dbt.type_timestamp() }}) as _max_loaded_at
from final
