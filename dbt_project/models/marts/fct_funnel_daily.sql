{# Daily purchase funnel (DESIGN §2): a user_key reaches step k on a date when its furthest
   step that day (int_user_activity_daily.funnel_step) is k or later, so the counts never
   increase down the funnel. #}

with user_days as (

    -- one row per (user_key, date) with non-bot events and the furthest step reached
    select activity_date, funnel_step
    from {{ ref('int_user_activity_daily') }}

),

daily as (

    select
        activity_date as metric_date,
        sum(case when funnel_step >= 1 then 1 else 0 end) as viewers,
        sum(case when funnel_step >= 2 then 1 else 0 end) as product_viewers,
        sum(case when funnel_step >= 3 then 1 else 0 end) as cart_adders,
        sum(case when funnel_step >= 4 then 1 else 0 end) as checkout_starters,
        sum(case when funnel_step >= 5 then 1 else 0 end) as purchasers
    from user_days
    group by activity_date

)

select
    cast(metric_date as date) as metric_date,
    cast(viewers as {{ dbt.type_bigint() }}) as viewers,
    cast(product_viewers as {{ dbt.type_bigint() }}) as product_viewers,
    cast(cart_adders as {{ dbt.type_bigint() }}) as cart_adders,
    cast(checkout_starters as {{ dbt.type_bigint() }}) as checkout_starters,
    cast(purchasers as {{ dbt.type_bigint() }}) as purchasers,
    cast({{ nightjar.safe_divide('product_viewers', 'viewers') }} as {{ nightjar.type_double() }}) as view_to_product_rate,
    cast({{ nightjar.safe_divide('cart_adders', 'product_viewers') }} as {{ nightjar.type_double() }}) as product_to_cart_rate,
    cast({{ nightjar.safe_divide('checkout_starters', 'cart_adders') }} as {{ nightjar.type_double() }}) as cart_to_checkout_rate,
    cast({{ nightjar.safe_divide('purchasers', 'checkout_starters') }} as {{ nightjar.type_double() }}) as checkout_to_purchase_rate,
    cast({{ nightjar.safe_divide('purchasers', 'viewers') }} as {{ nightjar.type_double() }}) as overall_conversion_rate
from daily
