{# One row per session (DESIGN §2): a user_key's non-bot events, split where the gap exceeds
   session_timeout_minutes, dated by their start. Incremental: the changed users from their
   first session a change can reach (strategy replace_changed_users, README "Incrementality").
   `channel`: the first event's source/medium/referrer grouped by the seed channel_rules
   (README "Channels and attribution"). #}
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_device_users') }}
{{
  config(
    materialized=nightjar.incremental_materialization(),
    incremental_strategy='replace_changed_users',
    replaced_rows=dbt.dateadd('minute', var('session_timeout_minutes'), 'stored.session_end') ~ ' >= changed_from',
    on_schema_change='append_new_columns',
    post_hook=["{{ nightjar.delete_identified_anonymous_keys() }}"]
  )
}}

with

{% if is_incremental() %}
change_points as (

    {{ nightjar.user_change_points('_max_loaded_at') }}

),

stored_sessions as (

    -- the changed users' sessions in this table; those that end more than the timeout
    -- before the user's first change are not affected by it and are kept (the strategy
    -- replaces the others: `replaced_rows` above is the negation of is_kept)
    select
        sessions.*,
        {{ dbt.dateadd('minute', var('session_timeout_minutes'), 'sessions.session_end') }} < change_points.changed_from as is_kept
    from {{ this }} as sessions
    inner join change_points
        on sessions.user_key = change_points.user_key

),

resume_points as (

    -- re-sessionise each changed user from its first session that is not kept (or its
    -- first change, if earlier), numbering on after the kept sessions
    select
        change_points.user_key,
        case
            when min(case when not stored_sessions.is_kept then stored_sessions.session_start end) < change_points.changed_from
                then min(case when not stored_sessions.is_kept then stored_sessions.session_start end)
            else change_points.changed_from
        end as resume_from,
        sum(case when stored_sessions.is_kept then 1 else 0 end) as kept_sessions
    from change_points
    left join stored_sessions
        on change_points.user_key = stored_sessions.user_key
    group by change_points.user_key, change_points.changed_from

),

stitched as (

    select user_events.*, resume_points.kept_sessions as session_number_offset
    from ({{ nightjar.events_of_user_keys('resume_points', from_column='resume_from') }}) as user_events
    inner join resume_points
        on user_events.user_key = resume_points.user_key

),
{% else %}
stitched as (

    select all_events.*, 0 as session_number_offset
    from {{ ref('int_events_stitched') }} as all_events

),
{% endif %}

events as (

    select *
    from stitched
    where not is_bot

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
        session_number_offset + sum(is_session_start) over (
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

traffic_sources as (

    -- the channel is a function of (source, medium, referrer): classify each distinct
    -- combination once, not each session; absent and blank values are ''
    select distinct
        coalesce(trim(utm_source), '') as source_key,
        coalesce(trim(utm_medium), '') as medium_key,
        coalesce(trim(referrer), '') as referrer_key
    from first_events

),

rule_matches as (

    -- campaign tags (source or medium) take precedence over the referrer; the first rule
    -- (by rule_order) of the applicable kind whose patterns all match wins
    select
        traffic_sources.source_key,
        traffic_sources.medium_key,
        traffic_sources.referrer_key,
        rules.channel,
        row_number() over (
            partition by traffic_sources.source_key, traffic_sources.medium_key, traffic_sources.referrer_key
            order by rules.rule_order
        ) as match_rank
    from traffic_sources
    inner join {{ ref('channel_rules') }} as rules
        on rules.match_on = case
            when traffic_sources.source_key <> '' or traffic_sources.medium_key <> '' then 'utm'
            when traffic_sources.referrer_key <> '' then 'referrer'
            else 'none'
        end
        and (coalesce(rules.source_pattern, '') = ''
             or {{ nightjar.regex_matches_ci_column('traffic_sources.source_key', 'rules.source_pattern') }})
        and (coalesce(rules.medium_pattern, '') = ''
             or {{ nightjar.regex_matches_ci_column('traffic_sources.medium_key', 'rules.medium_pattern') }})
        and (coalesce(rules.referrer_pattern, '') = ''
             or {{ nightjar.regex_matches_ci_column('traffic_sources.referrer_key', 'rules.referrer_pattern') }})

),

channels as (

    select source_key, medium_key, referrer_key, channel
    from rule_matches
    where match_rank = 1

),

final as (

    select
        {{ dbt.hash(dbt.concat(["aggregated.user_key", "'|'", "cast(aggregated.session_start as " ~ dbt.type_string() ~ ")"])) }} as session_id,
        aggregated.user_key,
        aggregated.customer_id,
        cast(aggregated.session_start as date) as session_date,
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
        coalesce(channels.channel, 'other') as channel,
        first_events.device_type,
        first_events.country,
        aggregated.session_number,
        aggregated._max_loaded_at
    from aggregated
    inner join first_events
        on aggregated.user_key = first_events.user_key
        and aggregated.session_number = first_events.session_number
    left join channels
        on coalesce(trim(first_events.utm_source), '') = channels.source_key
        and coalesce(trim(first_events.utm_medium), '') = channels.medium_key
        and coalesce(trim(first_events.referrer), '') = channels.referrer_key

),

new_sessions as (

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
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(device_type as {{ dbt.type_string() }}) as device_type,
        cast(country as {{ dbt.type_string() }}) as country,
        cast(session_number as {{ dbt.type_bigint() }}) as session_number,
        cast(_max_loaded_at as {{ dbt.type_timestamp() }}) as _max_loaded_at
    from final

)

select * from new_sessions
