{# One row per order x touchpoint x attribution model with the touchpoint's credit (the credits
   of an order sum to 1 per model). Touchpoints: the customer's sessions that start in the
   lookback window before the order, up to the order time (README "Attribution"). Rebuilt each
   run: a late session or a re-identified device moves credit of any past order. #}

with

orders as (

    -- the orders that count in revenue (DESIGN §2: not cancelled; refunded ones included)
    select
        order_id,
        customer_id,
        created_at as ordered_at,
        order_date,
        total_amount_usd as order_revenue_usd,
        is_refunded
    from {{ ref('stg_orders') }}
    where not is_cancelled

),

sessions as (

    select session_id, customer_id, session_start, channel
    from {{ ref('fct_sessions') }}
    where customer_id is not null

),

touchpoints as (

    select
        orders.order_id,
        sessions.session_id,
        sessions.session_start,
        sessions.channel,
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
        {{ model }} as credit
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
        1.0 as credit
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
        orders.is_refunded
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
    is_refunded
from final
