{# One row per order x touchpoint x attribution model with the touchpoint's credit (the credits
   of an order sum to 1 per model). Touchpoints: the customer's sessions that start in the
   lookback window before the order, up to the order time. Incremental: only the orders whose
   touchpoints or order row may have changed are recomputed (delete+insert on order_id);
   orders that no longer count are deleted by the post-hook (README "Channels and
   attribution"). #}
-- depends_on: {{ ref('int_identity_map') }}
-- depends_on: {{ ref('int_device_users') }}
-- depends_on: {{ ref('int_events_stitched') }}
{{
  config(
    materialized=nightjar.incremental_materialization(),
    unique_key='order_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=["{{ nightjar.delete_uncounted_orders() }}"]
  )
}}

with

counted_orders as (

    -- the orders that count in revenue (DESIGN §2: not cancelled; refunded ones included),
    -- typed as stored, so that a stored order compares equal to an unchanged one
    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(order_date as date) as order_date,
        cast(created_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(total_amount_usd as {{ nightjar.type_double() }}) as order_revenue_usd,
        is_refunded
    from {{ ref('stg_orders') }}
    where not is_cancelled

),

{% if is_incremental() %}
change_points as (

    -- (customer, changed_from): what may have changed in a customer's sessions since the
    -- watermark. A session is rewritten with the _max_loaded_at of its newest event, so a
    -- new, late or re-delivered event (or a merge it causes) shows as a session newer than
    -- the watermark, changed from its start. A device that changed hands takes events away
    -- from its old owner without a new load: moved_device_owners, from its first
    -- anonymous event. In a backfill: the users with events in the window, from the start.
    select customer_id, session_start as changed_from
    from {{ ref('fct_sessions') }}
    where customer_id is not null
      and _max_loaded_at > {{ nightjar.watermark('_max_loaded_at') }}

    union all

    select user_key as customer_id, changed_from
    from ({{ nightjar.moved_device_owners('_max_loaded_at') }}) as moved

    {% if nightjar.is_backfill() %}
    union all

    select user_key as customer_id, cast('1900-01-01 00:00:00' as {{ dbt.type_timestamp() }}) as changed_from
    from {{ ref('int_events_stitched') }}
    where {{ nightjar.in_backfill_window('event_timestamp') }}
    {% endif %}

),

first_changes as (

    select customer_id, min(changed_from) as changed_from
    from change_points
    group by customer_id

),

resume_points as (

    -- An order's touchpoints (ids, starts, channels) depend only on the customer's events
    -- up to the order, so an order before changed_from is affected only through a session
    -- that started before it and now reaches changed_from (less the timeout: it was
    -- extended, merged or cut there). Orders from the first such session on are recomputed.
    select
        first_changes.customer_id,
        case
            when min(sessions.session_start) < first_changes.changed_from then min(sessions.session_start)
            else first_changes.changed_from
        end as resume_from
    from first_changes
    left join {{ ref('fct_sessions') }} as sessions
        on sessions.customer_id = first_changes.customer_id
        and sessions.session_end >= {{ dbt.dateadd('minute', -1 * var('session_timeout_minutes'), 'first_changes.changed_from') }}
    group by first_changes.customer_id, first_changes.changed_from

),

stored_orders as (

    -- each stored order once (its row for the first model with touchpoint 0 or 1)
    select order_id, customer_id, order_date, ordered_at, order_revenue_usd, is_refunded
    from {{ this }}
    where attribution_model = '{{ nightjar.attribution_models()[0] }}'
      and touchpoint_number <= 1

),

changed_orders as (

    -- new orders and orders whose customer, time, amount or refund status changed (those
    -- that no longer count are deleted by the post-hook)
    select order_id
    from (
        select * from counted_orders
        {{ dbt.except() }}
        select * from stored_orders
    ) as new_versions

),

orders as (

    select counted_orders.*
    from counted_orders
    where counted_orders.order_id in (select order_id from changed_orders)
       or exists (
           select 1
           from resume_points
           where resume_points.customer_id = counted_orders.customer_id
             and resume_points.resume_from <= counted_orders.ordered_at
       )

),
{% else %}
orders as (

    select * from counted_orders

),
{% endif %}

sessions as (

    select session_id, customer_id, session_start, channel, _max_loaded_at
    from {{ ref('fct_sessions') }}
    where customer_id is not null

),

touchpoints as (

    select
        orders.order_id,
        sessions.session_id,
        sessions.session_start,
        sessions.channel,
        sessions._max_loaded_at,
        ({{ nightjar.epoch_seconds('orders.ordered_at') }} - {{ nightjar.epoch_seconds('sessions.session_start') }}) / 86400.0
            as days_before_order
    from orders
    inner join sessions
        on sessions.customer_id = orders.customer_id
        and sessions.session_start <= orders.ordered_at
        and sessions.session_start >= {{ dbt.dateadd('day', -1 * var('attribution_lookback_days'), 'orders.ordered_at') }}

),

numbered as (

    select
        touchpoints.*,
        row_number() over (partition by order_id order by session_start, session_id) as touchpoint_number,
        count(*) over (partition by order_id) as touchpoints,
        {{ nightjar.power(2, '-1.0 * days_before_order / ' ~ var('attribution_half_life_days')) }} as decay_weight
    from touchpoints

),

weighted as (

    select
        numbered.*,
        -- GA4's last non-direct click: the latest touchpoint that is not direct, else the last one
        coalesce(
            max(case when channel <> 'direct' then touchpoint_number end) over (partition by order_id),
            touchpoints
        ) as last_non_direct_number,
        sum(decay_weight) over (partition by order_id) as decay_weight_total
    from numbered

),

credited as (

    select
        weighted.*,
        case when touchpoint_number = 1 then 1.0 else 0.0 end as first_touch,
        case when touchpoint_number = touchpoints then 1.0 else 0.0 end as last_touch,
        case when touchpoint_number = last_non_direct_number then 1.0 else 0.0 end as last_non_direct_touch,
        1.0 / touchpoints as linear,
        decay_weight / decay_weight_total as time_decay,
        -- 40/20/40: 40 % each to the first and the last, 20 % shared by those in between;
        -- one touchpoint takes all, two share half each
        case
            when touchpoints = 1 then 1.0
            when touchpoints = 2 then 0.5
            when touchpoint_number = 1 or touchpoint_number = touchpoints then 0.4
            else 0.2 / (touchpoints - 2)
        end as position_based
    from weighted

),

credits_long as (

    {% for model in nightjar.attribution_models() %}
    select
        order_id,
        '{{ model }}' as attribution_model,
        session_id,
        session_start,
        channel,
        touchpoint_number,
        touchpoints,
        days_before_order,
        {{ model }} as credit,
        _max_loaded_at
    from credited
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

unattributed as (

    -- orders without a touchpoint: all credit to one direct, unattributed row per model
    {% for model in nightjar.attribution_models() %}
    select
        orders.order_id,
        '{{ model }}' as attribution_model,
        cast(null as {{ dbt.type_string() }}) as session_id,
        cast(null as {{ dbt.type_timestamp() }}) as session_start,
        'direct' as channel,
        0 as touchpoint_number,
        0 as touchpoints,
        cast(null as {{ nightjar.type_double() }}) as days_before_order,
        1.0 as credit,
        cast(null as {{ dbt.type_timestamp() }}) as _max_loaded_at
    from orders
    where not exists (select 1 from touchpoints where touchpoints.order_id = orders.order_id)
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        orders.ordered_at,
        credits.attribution_model,
        credits.touchpoint_number,
        credits.touchpoints,
        credits.session_id,
        credits.session_start,
        credits.channel,
        credits.touchpoints > 0 as is_attributed,
        credits.days_before_order,
        credits.credit,
        credits.credit * orders.order_revenue_usd as credited_revenue_usd,
        orders.order_revenue_usd,
        orders.is_refunded,
        credits._max_loaded_at
    from (
        select * from credits_long
        union all
        select * from unattributed
    ) as credits
    inner join orders
        on credits.order_id = orders.order_id

)

select
    cast(order_id as {{ dbt.type_string() }}) as order_id,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    cast(order_date as date) as order_date,
    cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at,
    cast(attribution_model as {{ dbt.type_string() }}) as attribution_model,
    cast(touchpoint_number as {{ dbt.type_bigint() }}) as touchpoint_number,
    cast(touchpoints as {{ dbt.type_bigint() }}) as touchpoints,
    cast(session_id as {{ dbt.type_string() }}) as session_id,
    cast(session_start as {{ dbt.type_timestamp() }}) as session_start,
    cast(channel as {{ dbt.type_string() }}) as channel,
    is_attributed,
    cast(days_before_order as {{ nightjar.type_double() }}) as days_before_order,
    cast(credit as {{ nightjar.type_double() }}) as credit,
    cast(credited_revenue_usd as {{ nightjar.type_double() }}) as credited_revenue_usd,
    cast(order_revenue_usd as {{ nightjar.type_double() }}) as order_revenue_usd,
    is_refunded,
    -- per order, not per touchpoint: the nightly data tests window on it (event_time) and
    -- must see whole orders, whose credits sum to 1
    cast(max(_max_loaded_at) over (partition by order_id) as {{ dbt.type_timestamp() }}) as _max_loaded_at
from final
